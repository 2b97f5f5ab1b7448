"""Encoders that ship with anymodal. Each lives in its own subpackage; none imports torch on import."""
