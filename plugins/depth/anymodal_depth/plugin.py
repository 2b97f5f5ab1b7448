"""The anymodal entry point of anymodal-depth: registers the ``depth`` modality.

Imports nothing heavy: numpy, PIL and torch load with :mod:`anymodal_depth.preprocessing`, the
first time a depth map is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anymodal

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION

FILE_KINDS = ("png", "npy")


def load(path: Path) -> Any:
    """Decode a 16-bit PNG (millimetres) or ``.npy`` (float metres) to metres ``[H, W]``."""
    from anymodal_depth.preprocessing import load_depth

    return load_depth(path)


def preprocess(
    depth_m: Any, image_size: int = 224, baseline: float = 0.075, focal_length: float = 518.857
) -> Any:
    """Depth in metres -> disparity ``baseline * focal_length / depth``, float32 ``[1, S, S]``."""
    from anymodal_depth.preprocessing import preprocess_depth

    return preprocess_depth(depth_m, image_size=image_size, baseline=baseline, focal_length=focal_length)


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="depth",
            loader=load,
            preprocess=preprocess,
            file_kinds=FILE_KINDS,
            default_encoder="imagebind",
            default_projector="linear",
            description="depth maps (16-bit png in mm, npy in m) as ImageBind disparity, 1 x 224 x 224",
        )
    )
