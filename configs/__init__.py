"""Shipped presets, packaged as ``anymodal.configs`` (see pyproject.toml)."""
