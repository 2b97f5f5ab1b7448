"""Decoding of depth maps and their conversion to ImageBind's disparity input.

ImageBind ships no depth loader. Its paper converts depth to disparity following Omnivore, and
the Omnivore authors give the SUN RGB-D recipe ``disparity = baseline * focal_length / depth_m``
with depth clipped to [0.01, 50] m. Our choices, where no reference exists:

* a 16-bit PNG holds millimetres, an ``.npy`` float array holds metres;
* a pixel without a measurement (depth <= 0) counts as the far limit, 50 m, so it gets the
  smallest disparity instead of the largest;
* disparity is computed at full resolution, then resized (bicubic on a float image, antialiased)
  and centre-cropped as images are; no normalisation follows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

import anymodal

#: Depth maps above this many pixels are refused before decoding (tests lower it).
MAX_PIXELS = anymodal.MAX_IMAGE_PIXELS
#: ``.npy`` depth maps above this many values are refused before reading (tests lower it).
MAX_ELEMENTS = anymodal.MAX_NPY_ELEMENTS

#: Depth range in metres that disparity is computed over (Omnivore / ImageBind).
MIN_DEPTH_M = 0.01
MAX_DEPTH_M = 50.0
#: Kinect v1 baseline in metres (SUN RGB-D kv1, kv1_b and kv2; RealSense and Xtion use 0.095).
DEFAULT_BASELINE = 0.075
#: A typical Kinect v1 focal length in pixels, the first value of SUN RGB-D's kv1 intrinsics.
DEFAULT_FOCAL_LENGTH = 518.857

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_depth(path: Path) -> np.ndarray:
    """Decode a depth map to float32 metres ``[height, width]``; 0 marks a missing measurement."""
    if path.suffix.lower() == ".npy":
        return _load_npy_metres(path)
    return _load_png_millimetres(path)


def _load_npy_metres(path: Path) -> np.ndarray:
    array = anymodal.load_npy(path, modality="depth", max_elements=MAX_ELEMENTS)
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:-1])
    if array.ndim != 2 or min(array.shape) == 0:
        raise anymodal.InputError(
            f"depth array must be 2-D [height, width], got shape {array.shape}: {path}",
            hint="save one depth map per file",
        )
    if array.dtype.kind != "f":
        raise anymodal.InputError(
            f"depth .npy must hold float metres, got {array.dtype}: {path}",
            hint="save metres as float32, or millimetres as a 16-bit PNG",
        )
    return array.astype(np.float32)


def _load_png_millimetres(path: Path) -> np.ndarray:
    image = anymodal.open_image(path, modality="depth", max_pixels=MAX_PIXELS)
    try:
        if image.mode not in _SIXTEEN_BIT_MODES:
            raise anymodal.InputError(
                f"depth PNG must be 16-bit greyscale in millimetres, got mode {image.mode!r}: {path}",
                hint="save depth as a 16-bit PNG in millimetres or as a float .npy in metres",
            )
        millimetres = np.asarray(image).astype(np.float32)
    finally:
        image.close()
    if millimetres.min() < 0 or millimetres.max() > 65535:
        raise anymodal.InputError(
            f"depth PNG values must be 0..65535 millimetres, "
            f"got {millimetres.min():g}..{millimetres.max():g}: {path}",
            hint="save depth as a 16-bit PNG in millimetres",
        )
    return millimetres / 1000.0


def disparity(
    depth_m: np.ndarray, baseline: float = DEFAULT_BASELINE, focal_length: float = DEFAULT_FOCAL_LENGTH
) -> np.ndarray:
    """``baseline * focal_length / clip(depth_m, 0.01, 50)``; depth <= 0 counts as 50 m."""
    depth = np.where(depth_m > 0, depth_m, MAX_DEPTH_M)
    depth = np.clip(depth, MIN_DEPTH_M, MAX_DEPTH_M)
    return (baseline * focal_length / depth).astype(np.float32)


def preprocess_depth(
    depth_m: np.ndarray,
    image_size: int = 224,
    baseline: float = DEFAULT_BASELINE,
    focal_length: float = DEFAULT_FOCAL_LENGTH,
) -> torch.Tensor:
    """Depth in metres ``[H, W]`` -> disparity, resized and centre-cropped: float32 ``[1, S, S]``."""
    _check_positive("image_size", image_size, integer=True)
    _check_positive("baseline", baseline)
    _check_positive("focal_length", focal_length)
    image = Image.fromarray(disparity(depth_m, baseline, focal_length))
    resized = anymodal.resize_short_side(image, image_size, Image.Resampling.BICUBIC)
    return anymodal.to_tensor(anymodal.center_crop(resized, image_size))


def _check_positive(name: str, value: object, *, integer: bool = False) -> None:
    numeric = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric) or not value > 0:
        kind = "a positive integer" if integer else "a positive number"
        raise anymodal.UsageError(
            f"depth preprocess option {name} must be {kind}, got {value!r}",
            hint=f"set modalities.depth.preprocess.{name}",
        )
