"""Preprocessing transforms shared by modality plugins (public API).

The image helpers reproduce torchvision's ``Resize(int)``, ``CenterCrop``, ``ToTensor`` and
``Normalize`` on PIL images without needing torchvision; :func:`clip_starts` is pytorchvideo's
clip sampler that ImageBind uses for audio and video. numpy, PIL and torch are imported inside the
functions, so ``import anymodal`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

#: CLIP's per-channel normalisation, which ImageBind's vision preprocessing uses.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_BYTE_MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "La", "RGBa")


def clip_starts(max_start: Fraction, clips: int) -> list[Fraction]:
    """Start times of pytorchvideo's ``ConstantClipsPerVideoSampler``, which ImageBind uses for
    audio and video: ``clips`` starts spread evenly over ``[0, max_start]``.

    ``step = max_start / max(clips - 1, 1)`` and clip k starts at ``k * step``; like the reference
    it stops early once the next start would pass ``max_start``. How ``max_start`` is computed
    (``duration - clip_duration``, exactly or through float) is the caller's, as it differs
    between ImageBind's audio and video paths.
    """
    if clips < 1:
        raise ValueError(f"clips must be at least 1, got {clips}")
    step = max_start / max(clips - 1, 1)
    starts: list[Fraction] = []
    for k in range(clips):
        starts.append(k * step)
        if step * (k + 1) > max_start:
            break
    return starts


def resize_short_side(image: Image.Image, size: int, resample: int | None = None) -> Image.Image:
    """Resize so the shorter side is ``size``, as torchvision's ``Resize(size)`` does on a PIL image.

    The longer side becomes ``int(size * long / short)``. ``resample`` defaults to bicubic; PIL's
    resize is antialiased. Works on any mode PIL can resize (``L``, ``RGB``, ``F``, ...).
    """
    from PIL import Image

    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    width, height = image.size
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    if (new_width, new_height) == (width, height):
        return image
    method = Image.Resampling.BICUBIC if resample is None else resample
    return image.resize((new_width, new_height), method)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Crop the central ``size`` x ``size`` square, with torchvision's ``CenterCrop`` rounding.

    The top-left corner is ``int(round((side - size) / 2))`` on each axis. A side shorter than
    ``size`` is zero-padded first, ``(size - side) // 2`` before and the rest after, as torchvision
    does.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    width, height = image.size

    def start(side: int) -> int:
        if side < size:
            return -((size - side) // 2)
        return round((side - size) / 2)

    left, top = start(width), start(height)
    if (left, top, width, height) == (0, 0, size, size):
        return image
    # PIL fills the part of a crop box outside the image with zeros.
    return image.crop((left, top, left + size, top + size))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as a float32 tensor ``[channels, height, width]``.

    8-bit modes (``L``, ``RGB``, ``RGBA``, ...) are scaled to [0, 1] as torchvision's ``ToTensor``
    does; a float image (mode ``F``) keeps its values. Other modes raise ``ValueError``: convert
    them first.
    """
    import numpy as np
    import torch

    if image.mode in _BYTE_MODES:
        array = np.asarray(image, dtype=np.uint8).astype(np.float32) / 255.0
    elif image.mode == "F":
        array = np.array(image, dtype=np.float32)  # a writable copy: torch refuses read-only memory
    else:
        raise ValueError(f"to_tensor handles 8-bit modes and mode 'F', not {image.mode!r}")
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def normalize(tensor: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(tensor - mean) / std`` per channel of a ``[channels, height, width]`` tensor (not in place)."""
    import torch

    if tensor.ndim != 3 or tensor.shape[0] != len(mean) or len(mean) != len(std):
        raise ValueError(
            f"normalize expects [channels, height, width] with {len(mean)} channels "
            f"(and as many std values), got {tuple(tensor.shape)}"
        )
    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    return (tensor - mean_t) / std_t
