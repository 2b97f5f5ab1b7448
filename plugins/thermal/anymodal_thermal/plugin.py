"""The anymodal entry point of anymodal-thermal: registers the ``thermal`` modality.

Imports nothing heavy: numpy, PIL and torch load with :mod:`anymodal_thermal.preprocessing`, the
first time a thermal image is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anymodal

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION

FILE_KINDS = ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "npy")


def load(path: Path) -> Any:
    """Decode an 8/16-bit greyscale image or ``.npy`` array to one channel in [0, 1]."""
    from anymodal_thermal.preprocessing import load_thermal

    return load_thermal(path)


def preprocess(image: Any, image_size: int = 224) -> Any:
    """Decoded thermal image -> float32 ``[1, image_size, image_size]`` in [0, 1], not normalised."""
    from anymodal_thermal.preprocessing import preprocess_thermal

    return preprocess_thermal(image, image_size=image_size)


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="thermal",
            loader=load,
            preprocess=preprocess,
            file_kinds=FILE_KINDS,
            default_encoder="imagebind",
            default_projector="linear",
            description="thermal images (8/16-bit greyscale png/jpg/tiff/bmp, npy) as PandaGPT "
            "feeds ImageBind: one channel in [0, 1], resize, centre crop, no normalisation",
        )
    )
