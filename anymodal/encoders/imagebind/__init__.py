"""ImageBind (Girdhar et al., 2023) as anymodal encoders, loading the official checkpoint's keys.

Importing this package does not import torch: the configuration and the encoder spec are
torch-free, and the torch-based names (:class:`ImageBind`, :func:`load_imagebind`, ...) are
imported on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from anymodal.encoders.imagebind.config import IMAGEBIND_HUGE, TRUNKS, ImageBindConfig
from anymodal.encoders.imagebind.spec import IMAGEBIND_ENCODER, MODALITY_TRUNKS, ImageBindOptions

if TYPE_CHECKING:
    from anymodal.encoders.imagebind.checkpoint import load_imagebind, load_imagebind_weights
    from anymodal.encoders.imagebind.encoder import ImageBindEncoder
    from anymodal.encoders.imagebind.model import ImageBind, ImageBindEncoding

_LAZY = {
    "ImageBind": "model",
    "ImageBindEncoding": "model",
    "ImageBindEncoder": "encoder",
    "load_imagebind": "checkpoint",
    "load_imagebind_weights": "checkpoint",
}

__all__ = [
    "IMAGEBIND_ENCODER",
    "IMAGEBIND_HUGE",
    "MODALITY_TRUNKS",
    "TRUNKS",
    "ImageBind",
    "ImageBindConfig",
    "ImageBindEncoder",
    "ImageBindEncoding",
    "ImageBindOptions",
    "load_imagebind",
    "load_imagebind_weights",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"anymodal.encoders.imagebind.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
