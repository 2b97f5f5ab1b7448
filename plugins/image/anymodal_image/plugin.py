"""The anymodal entry point of anymodal-image: registers the ``image`` modality.

Imports nothing heavy: PIL and torch load with :mod:`anymodal_image.preprocessing`, the first time
an image is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anymodal

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION

FILE_KINDS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")


def load(path: Path) -> Any:
    """Decode an image file to 8-bit RGB (first frame of an animation); InputError if it cannot."""
    from anymodal_image.preprocessing import load_image

    return load_image(path)


def preprocess(image: Any, image_size: int = 224) -> Any:
    """Decoded image -> float32 tensor ``[3, image_size, image_size]`` (ImageBind's vision input)."""
    from anymodal_image.preprocessing import preprocess_image

    return preprocess_image(image, image_size=image_size)


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="image",
            loader=load,
            preprocess=preprocess,
            file_kinds=FILE_KINDS,
            default_encoder="imagebind",
            default_projector="linear",
            description="images (jpg, png, webp, bmp, gif first frame) as ImageBind sees them: "
            "bicubic resize, centre crop, CLIP normalisation",
        )
    )
