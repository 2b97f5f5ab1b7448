"""Encoders that ship with anymodal, each in its own subpackage (``imagebind``: a clean-room
ImageBind that loads the official checkpoint and builds only the trunks in use). None imports
torch on import; the modules load when an encoder is built.

May import: contract, files, preprocess, anymodal, config.
"""
