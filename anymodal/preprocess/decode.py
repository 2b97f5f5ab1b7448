"""Bounded decoding of image and ``.npy`` files (public API for modality plugins).

:func:`open_image` and :func:`load_npy` refuse oversized content before it is read in full and
raise :class:`anymodal.InputError` naming the file for anything they cannot decode. numpy and PIL
are imported inside the functions, so ``import anymodal`` stays cheap.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from anymodal.contract.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

#: Images with more pixels than this are refused before their pixel data is decoded.
MAX_IMAGE_PIXELS = 100_000_000

#: ``.npy`` arrays with more elements than this are refused before their data is read.
MAX_NPY_ELEMENTS = 100_000_000


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
