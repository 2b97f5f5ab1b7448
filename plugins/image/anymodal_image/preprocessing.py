"""Decoding and preprocessing of images, as ImageBind's ``load_and_transform_vision_data`` does.

RGB, short side resized to ``image_size`` (bicubic, antialiased), centre crop, [0, 1], then the
CLIP mean and std: a float32 tensor ``[3, image_size, image_size]``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

import anymodal

#: Images above this many pixels are refused before decoding (tests lower it).
MAX_PIXELS = anymodal.MAX_IMAGE_PIXELS

# 16-bit, 32-bit and float images would be clipped to 8 bits by convert("RGB"); they are depth or
# thermal data far more often than photographs.
_REFUSED_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def load_image(path: Path) -> Image.Image:
    """Decode ``path`` (the first frame of an animated GIF/WebP) as an 8-bit RGB image."""
    image = anymodal.open_image(path, modality="image", max_pixels=MAX_PIXELS)
    if image.mode in _REFUSED_MODES:
        mode = image.mode
        image.close()
        raise anymodal.InputError(
            f"image file holds {mode!r} (16-bit, 32-bit or float) pixels, not an 8-bit picture: {path}",
            hint="pass it as --depth or --thermal, or convert it to 8-bit RGB",
        )
    try:
        return image.convert("RGB")
    except (OSError, ValueError) as error:
        raise anymodal.InputError(
            f"image cannot be converted to RGB: {path} ({error})", hint="re-export it as PNG or JPEG"
        ) from error
    finally:
        image.close()


def preprocess_image(image: Image.Image, image_size: int = 224) -> torch.Tensor:
    """RGB PIL image -> float32 ``[3, image_size, image_size]``, CLIP-normalised."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
        raise anymodal.UsageError(
            f"image preprocess option image_size must be a positive integer, got {image_size!r}",
            hint="set modalities.image.preprocess.image_size, e.g. 224",
        )
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    resized = anymodal.resize_short_side(rgb, image_size, Image.Resampling.BICUBIC)
    cropped = anymodal.center_crop(resized, image_size)
    return anymodal.normalize(anymodal.to_tensor(cropped), anymodal.CLIP_MEAN, anymodal.CLIP_STD)
