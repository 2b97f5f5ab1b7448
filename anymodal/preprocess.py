"""Preprocessing helpers shared by modality plugins (public API).

Bounded decoding (:func:`open_image`, :func:`load_npy`) refuses oversized content before it is
read in full, and the image helpers reproduce torchvision's ``Resize(int)``, ``CenterCrop``,
``ToTensor`` and ``Normalize`` on PIL images without needing torchvision. numpy, PIL and torch
are imported inside the functions, so ``import anymodal`` stays cheap.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from anymodal.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

#: CLIP's per-channel normalisation, which ImageBind's vision preprocessing uses.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: Images with more pixels than this are refused before their pixel data is decoded.
MAX_IMAGE_PIXELS = 100_000_000

#: ``.npy`` arrays with more elements than this are refused before their data is read.
MAX_NPY_ELEMENTS = 100_000_000

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


def open_image(path: str | Path, *, modality: str, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file (the first frame of an animation) with a cap on its pixel count.

    PIL reads only the header when opening, so the size is checked before any pixel data is
    decoded. ``max_pixels`` defaults to :data:`MAX_IMAGE_PIXELS` (100 MP). Returns the image in
    the mode it was stored in; anything undecodable raises :class:`InputError` naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    cap = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    file = Path(path)
    try:
        with warnings.catch_warnings():
            # We apply our own cap below; PIL's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file)
    except Image.DecompressionBombError as error:
        raise InputError(
            f"{modality} image is too large to decode: {file} ({error})",
            hint=f"images are limited to {cap / 1e6:g} megapixels; downscale it first",
        ) from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise InputError(
            f"{modality} file is not a readable image: {file} ({error})",
            hint="check that the file is a valid image and not truncated",
        ) from error
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise InputError(f"{modality} image has no pixels ({width}x{height}): {file}", hint="re-export it")
    if width * height > cap:
        image.close()
        raise InputError(
            f"{modality} image is too large: {file} is {width}x{height} "
            f"({width * height / 1e6:.1f} megapixels), the limit is {cap / 1e6:g} megapixels",
            hint="downscale the image before passing it",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.seek(0)
            image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        image.close()
        raise InputError(
            f"{modality} image cannot be decoded: {file} ({error})",
            hint="the file is corrupt or truncated; re-export it",
        ) from error
    return image


def load_npy(path: str | Path, *, modality: str, max_elements: int | None = None) -> np.ndarray:
    """Read a numeric ``.npy`` array, refusing pickles, huge arrays and NaN or infinite values.

    The header is read first (memory-mapped, ``allow_pickle=False``) and the element count is
    checked against ``max_elements`` (default :data:`MAX_NPY_ELEMENTS`) before any data is
    copied. Booleans, complex numbers, strings and objects are refused. Returns an in-memory
    array of the stored dtype and shape.
    """
    import numpy as np

    cap = MAX_NPY_ELEMENTS if max_elements is None else max_elements
    file = Path(path)
    try:
        mapped = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(
            f"{modality} file is not a valid .npy array: {file} ({error})",
            hint="save it with numpy.save (no pickled objects)",
        ) from error
    if not isinstance(mapped, np.ndarray):  # an .npz archive renamed to .npy
        raise InputError(
            f"{modality} file is not a single .npy array: {file}", hint="save it with numpy.save"
        )
    kind = mapped.dtype.kind
    if kind not in "iuf":
        raise InputError(
            f"{modality} array must hold integers or floats, not {mapped.dtype}: {file}",
            hint="convert it with array.astype('float32') before saving",
        )
    if mapped.size > cap:
        raise InputError(
            f"{modality} array is too large: {file} holds {mapped.size:,} values "
            f"(shape {mapped.shape}), the limit is {cap:,}",
            hint="crop or downsample the array before passing it",
        )
    try:
        array = np.array(mapped)
    except (ValueError, OSError) as error:
        raise InputError(f"{modality} array cannot be read: {file} ({error})", hint="re-save it") from error
    finally:
        del mapped
    if kind == "f" and not np.isfinite(array).all():
        raise InputError(
            f"{modality} array contains NaN or infinite values: {file}",
            hint="replace them (for example with numpy.nan_to_num) before saving",
        )
    return array


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
