"""Decoding and preprocessing of thermal images, as PandaGPT's ``load_and_transform_thermal_data``.

One channel in [0, 1], short side resized to ``image_size`` (bicubic, antialiased), centre crop,
and **no normalisation**: a float32 tensor ``[1, image_size, image_size]``. ImageBind itself ships
no thermal loader.

* 8-bit images (colour ones are converted to luminance, PIL ``convert("L")``, as PandaGPT does)
  are resized as 8-bit images and divided by 255, exactly PandaGPT's path.
* 16-bit greyscale images are divided by 65535, ``.npy`` arrays are taken as floats in [0, 1] or
  as unsigned integers divided by their dtype's maximum (uint8 / 255, uint16 / 65535); these are
  resized as float images and clipped back to [0, 1], since bicubic can overshoot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

import anymodal

#: Thermal images above this many pixels are refused before decoding (tests lower it).
MAX_PIXELS = anymodal.MAX_IMAGE_PIXELS
#: ``.npy`` thermal arrays above this many values are refused before reading (tests lower it).
MAX_ELEMENTS = anymodal.MAX_NPY_ELEMENTS

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_thermal(path: Path) -> Image.Image:
    """Decode a thermal image: mode ``L`` (8-bit) or mode ``F`` with values in [0, 1]."""
    if path.suffix.lower() == ".npy":
        return _from_array(path)
    image = anymodal.open_image(path, modality="thermal", max_pixels=MAX_PIXELS)
    try:
        if image.mode in _SIXTEEN_BIT_MODES:
            values = np.asarray(image).astype(np.float32)
            if values.min() < 0 or values.max() > 65535:
                raise anymodal.InputError(
                    f"thermal image holds 32-bit values outside 0..65535: {path}",
                    hint="save it as an 8- or 16-bit greyscale image",
                )
            return Image.fromarray(values / 65535.0)
        if image.mode == "F":
            raise anymodal.InputError(
                f"thermal image holds float pixels, which have no defined range: {path}",
                hint="save it as an 8- or 16-bit greyscale image, or as a .npy of floats in [0, 1]",
            )
        return image.convert("L")
    except (OSError, ValueError) as error:
        raise anymodal.InputError(
            f"thermal image cannot be converted to greyscale: {path} ({error})", hint="re-export it"
        ) from error
    finally:
        image.close()


def _from_array(path: Path) -> Image.Image:
    array = anymodal.load_npy(path, modality="thermal", max_elements=MAX_ELEMENTS)
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:-1])
    if array.ndim != 2 or min(array.shape) == 0:
        raise anymodal.InputError(
            f"thermal array must be 2-D [height, width], got shape {array.shape}: {path}",
            hint="save one single-channel frame per file",
        )
    if array.dtype.kind == "u":
        scaled = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    elif array.dtype.kind == "f":
        if array.min() < 0 or array.max() > 1:
            raise anymodal.InputError(
                f"thermal float array must lie in [0, 1], got {array.min():g}..{array.max():g}: {path}",
                hint="scale it to [0, 1], or save raw counts as an unsigned integer array",
            )
        scaled = array.astype(np.float32)
    else:
        raise anymodal.InputError(
            f"thermal array must hold floats in [0, 1] or unsigned integers, got {array.dtype}: {path}",
            hint="convert it with array.astype('uint16') or scale it to float32 in [0, 1]",
        )
    return Image.fromarray(scaled)


def preprocess_thermal(image: Image.Image, image_size: int = 224) -> torch.Tensor:
    """Thermal image (``L`` or ``F`` in [0, 1]) -> float32 ``[1, image_size, image_size]`` in [0, 1]."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
        raise anymodal.UsageError(
            f"thermal preprocess option image_size must be a positive integer, got {image_size!r}",
            hint="set modalities.thermal.preprocess.image_size, e.g. 224",
        )
    if image.mode not in ("L", "F"):
        image = image.convert("L")
    resized = anymodal.resize_short_side(image, image_size, Image.Resampling.BICUBIC)
    tensor = anymodal.to_tensor(anymodal.center_crop(resized, image_size))
    return tensor.clamp_(0.0, 1.0) if image.mode == "F" else tensor
