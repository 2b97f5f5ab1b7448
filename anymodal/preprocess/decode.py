"""Bounded decoding of image and ``.npy`` files (public API for modality plugins).

:func:`open_image` and :func:`load_npy` refuse oversized content before it is read in full and
raise :class:`anymodal.InputError` naming the file for anything they cannot decode, saying
*truncated*, with what the header declares and how many bytes the file holds, when a file was cut
short. numpy and PIL are imported inside the functions, so ``import anymodal`` stays cheap.

Images: PIL reads only the header on open, so the pixel count is checked before any pixel data is
decoded. PIL refuses a cut-short file on load ("image file is truncated") unless
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set, in which case it pads the missing rows with grey;
:func:`open_image` turns that flag off while it decodes, whoever set it. PIL accepts a PNG or GIF
whose pixels are complete but whose end (the IEND chunk, the trailer byte) is missing, reads a
PNG chunk whose length field lies in one allocation of up to 4 GiB, and cannot open a cut WebP at
all; those are checked from the file's own structure (a PNG's chunks before PIL decodes it).

``.npy``: the header is parsed here, without numpy's reader (which allocates before it checks and
answers a text file with advice about pickles), and the element count, dtype and file size are
checked before the data is read into a buffer of exactly the declared size. The same reader,
:func:`read_npy_stream`, takes the members of a ``.npz`` archive for :func:`anymodal.read_array`.
"""

from __future__ import annotations

import ast
import math
import struct
import warnings
from io import BufferedIOBase
from pathlib import Path
from typing import TYPE_CHECKING

from anymodal.contract.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

#: Images with more pixels than this are refused before their pixel data is decoded.
MAX_IMAGE_PIXELS = 100_000_000

#: Arrays with more elements than this are refused before their data is read (the default of
#: :func:`load_npy` and of :func:`anymodal.read_array`, whatever the file's format).
MAX_NPY_ELEMENTS = 100_000_000

#: What PIL's format plugins and decoders raise on damaged data (they are not consistent).
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError, KeyError)

_TRUNCATED_HINT = "the file was cut short (an interrupted download or copy?); fetch or export it again"

_NPY_MAGIC = b"\x93NUMPY"
#: Longest ``.npy`` header accepted, in bytes (numpy's own default limit).
_NPY_MAX_HEADER = 10_000
_NPY_KEYS = {"descr", "fortran_order", "shape"}


def open_image(path: str | Path, *, modality: str, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file (the first frame of an animation) with a cap on its pixel count.

    ``max_pixels`` defaults to :data:`MAX_IMAGE_PIXELS` (100 MP). Returns the image in the mode it
    was stored in; anything undecodable raises :class:`InputError` naming the file, and a file cut
    short says so, with the size its header declares and the bytes it holds.
    """
    from PIL import Image

    cap = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    file = Path(path)
    held = _size(file, modality)
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
    except _IMAGE_ERRORS as error:
        declared = _riff_size(file)
        if declared is not None and declared > held:
            raise _image_truncated(modality, file, f"a RIFF image of {_bytes(declared)}", held) from error
        if "truncated" in str(error).lower():
            raise _image_truncated(modality, file, None, held) from error
        raise InputError(
            f"{modality} file is not a readable image: {file} ({error})",
            hint="check that the file is a valid image",
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
    says = f"{width}x{height} {image.format or 'image'}"
    # A PNG's chunks are walked before PIL decodes it: PIL reads the rest of a chunk in one call,
    # so a chunk length that lies (up to 4 GiB) would have it allocate that much.
    if image.format == "PNG" and _end_is_missing(file, image.format, held):
        image.close()
        raise _image_truncated(modality, file, says, held)
    try:
        _load_strictly(image)
    except _IMAGE_ERRORS as error:
        image.close()
        if "truncated" in str(error).lower() or _end_is_missing(file, image.format, held):
            raise _image_truncated(modality, file, says, held) from error
        raise InputError(
            f"{modality} file cannot be decoded as an image: {file} ({error})",
            hint="the file is corrupt; re-export it",
        ) from error
    # A JPEG may carry data after its end marker (some phones append theirs), so its end is only
    # looked at when decoding failed.
    if image.format == "GIF" and _end_is_missing(file, image.format, held):
        image.close()
        raise _image_truncated(modality, file, says, held)
    return image


def _load_strictly(image: Image.Image) -> None:
    """Decode the first frame with PIL's padding of truncated files turned off.

    ``LOAD_TRUNCATED_IMAGES`` is a process-wide flag; it is restored afterwards, and another thread
    decoding meanwhile is only made stricter, never looser.
    """
    from PIL import Image, ImageFile

    padding = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.seek(0)
            image.load()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = padding


def _image_truncated(modality: str, file: Path, says: str | None, held: int) -> InputError:
    """The one message for an image cut short: what its header declares, and what the file holds."""
    if says is None:
        return InputError(
            f"{modality} file is truncated: it ends inside its header, after {_bytes(held)}: {file}",
            hint=_TRUNCATED_HINT,
        )
    return InputError(
        f"{modality} file is truncated: its header says {says}, the file ends after {_bytes(held)}: {file}",
        hint=_TRUNCATED_HINT,
    )


def _end_is_missing(file: Path, kind: str | None, held: int) -> bool:
    """Whether a PNG has a chunk running past the end of the file or lacks its IEND chunk (walked
    chunk by chunk, seeking over the data), a GIF its trailer byte or a JPEG its end-of-image
    marker (PIL decodes the first two without complaint when their pixels are complete). Other
    kinds: False."""
    try:
        with file.open("rb") as stream:
            if kind in ("GIF", "JPEG"):
                # Some writers pad the end with NUL bytes; anything else after it is not an end.
                stream.seek(max(held - 64, 0))
                return not stream.read().rstrip(b"\0").endswith(b";" if kind == "GIF" else b"\xff\xd9")
            if kind != "PNG":
                return False
            offset = 8  # the signature
            while offset + 8 <= held:
                stream.seek(offset)
                length, chunk = struct.unpack(">I4s", stream.read(8))
                offset += 12 + length  # length, type, data, CRC
                if offset > held:
                    return True
                if chunk == b"IEND":
                    return False
            return True
    except (OSError, struct.error):
        return True


def _riff_size(file: Path) -> int | None:
    """The size a RIFF file (WebP) declares for itself, or None for other files."""
    try:
        with file.open("rb") as stream:
            head = stream.read(12)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF":
        return None
    return 8 + int.from_bytes(head[4:8], "little")


def load_npy(path: str | Path, *, modality: str, max_elements: int | None = None) -> np.ndarray:
    """Read a numeric ``.npy`` array, refusing pickles, huge arrays and NaN or infinite values.

    The header is parsed first; its element count is checked against ``max_elements`` (default
    :data:`MAX_NPY_ELEMENTS`) and its data size against the file's before anything is allocated.
    Booleans, complex numbers, strings, structured arrays and objects are refused. Returns an
    in-memory, writable array of the stored dtype, shape and memory order.
    """
    file = Path(path)
    try:
        with file.open("rb") as stream:
            return read_npy_stream(
                stream, _size(file, modality), file, modality=modality, max_elements=max_elements
            )
    except OSError as error:
        raise InputError(
            f"{modality} file cannot be read: {file} ({error})", hint="check the file"
        ) from error


def read_npy_stream(
    stream: BufferedIOBase, size: int, source: Path | str, *, modality: str, max_elements: int | None = None
) -> np.ndarray:
    """The array of the ``.npy`` data ``stream`` holds (``size`` bytes, header included), with
    :func:`load_npy`'s checks; ``source`` names it in messages. Shared by :func:`load_npy` and the
    ``.npz`` members that :func:`anymodal.read_array` reads, so both refuse the same things."""
    import numpy as np

    cap = MAX_NPY_ELEMENTS if max_elements is None else max_elements
    dtype, shape, fortran = _read_npy_header(stream, source, modality)
    held = size - stream.tell()
    count = math.prod(shape)
    declared = count * dtype.itemsize
    if declared != held:
        raise _npy_mismatch(modality, source, shape, dtype, declared, held)
    if count > cap:
        raise too_large(modality, source, f"{count:,} values (shape {shape})", cap)
    buffer = bytearray(declared)
    got = stream.readinto(buffer)
    if got != declared:  # the file shrank while it was read
        raise _npy_mismatch(modality, source, shape, dtype, declared, got)
    array = np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    check_finite(array, modality, source)
    return array


def too_large(modality: str, source: Path | str, holds: str, cap: int) -> InputError:
    """The one message for an array over its element cap; ``holds`` says how many values it has."""
    return InputError(
        f"{modality} array is too large: {source} holds {holds}, the limit is {cap:,}",
        hint="crop or downsample the array before passing it",
    )


def check_finite(array: np.ndarray, modality: str, source: Path | str) -> None:
    """Refuse a float array holding NaN or infinite values (integer arrays cannot)."""
    import numpy as np

    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(
            f"{modality} array contains NaN or infinite values: {source}",
            hint="replace them (for example with numpy.nan_to_num) before saving",
        )


def _read_npy_header(
    stream: BufferedIOBase, file: Path | str, modality: str
) -> tuple[np.dtype, tuple[int, ...], bool]:
    """``(dtype, shape, fortran_order)`` from a ``.npy`` header, the stream left at the data."""
    import numpy as np

    magic = stream.read(8)
    if not magic.startswith(_NPY_MAGIC) and not (magic and _NPY_MAGIC.startswith(magic)):
        if magic[:4] == b"PK\x03\x04":
            raise InputError(
                f"{modality} file is a .npz archive, not a .npy array: {file}",
                hint="save one array with numpy.save, or extract it from the archive",
            )
        raise InputError(
            f"{modality} file is not a .npy file (it does not start with numpy's magic bytes "
            f"\\x93NUMPY): {file}",
            hint="save the array with numpy.save; convert a text table with numpy.loadtxt first",
        )
    if len(magic) < 8:
        raise _npy_cut_in_header(modality, file, len(magic))
    version = magic[6]
    if version not in (1, 2, 3):
        raise _npy_bad_header(modality, file, f"format version {version}.{magic[7]} is unknown")
    width = 2 if version == 1 else 4
    field = stream.read(width)
    if len(field) < width:
        raise _npy_cut_in_header(modality, file, 8 + len(field))
    length = int.from_bytes(field, "little")
    if length > _NPY_MAX_HEADER:
        raise _npy_bad_header(modality, file, f"its header claims {length:,} bytes")
    raw = stream.read(length)
    if len(raw) < length:
        raise _npy_cut_in_header(modality, file, 8 + width + len(raw))
    try:
        header = ast.literal_eval(raw.decode("utf-8" if version == 3 else "latin-1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise _npy_bad_header(modality, file, "its header is not a Python dict literal") from None
    if not isinstance(header, dict) or set(header) != _NPY_KEYS:
        raise _npy_bad_header(modality, file, "its header lacks descr, fortran_order or shape")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
        raise _npy_bad_header(modality, file, f"its shape {shape!r} is not a tuple of sizes")
    if not isinstance(fortran, bool):
        raise _npy_bad_header(modality, file, f"its fortran_order {fortran!r} is not True or False")
    if not isinstance(descr, str):
        raise InputError(
            f"{modality} array must hold integers or floats, not a structured array: {file}",
            hint="save a plain numeric array",
        )
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError, SyntaxError):
        raise _npy_bad_header(modality, file, f"its dtype {descr[:40]!r} is not a numpy dtype") from None
    if dtype.kind not in "iuf" or dtype.subdtype is not None:
        raise InputError(
            f"{modality} array must hold integers or floats, not {dtype}: {file}",
            hint="convert it with array.astype('float32') before saving",
        )
    return dtype, shape, fortran


def _npy_layout(shape: tuple[int, ...], dtype: np.dtype, nbytes: int) -> str:
    """``shape (2000, 6) float32 (48,000 bytes of data)``: what a ``.npy`` header declares."""
    return f"shape {shape} {dtype} ({nbytes:,} bytes of data)"


def _npy_mismatch(
    modality: str, file: Path | str, shape: tuple[int, ...], dtype: np.dtype, declared: int, held: int
) -> InputError:
    layout = _npy_layout(shape, dtype, declared)
    if held < declared:
        return InputError(
            f"{modality} .npy file is truncated: its header says {layout}, it holds {held:,}: {file}",
            hint=_TRUNCATED_HINT,
        )
    return InputError(
        f"{modality} .npy file holds more than its header says: its header says {layout}, "
        f"it holds {held:,}: {file}",
        hint="the header does not describe the data; re-save the array with numpy.save",
    )


def _npy_cut_in_header(modality: str, file: Path | str, held: int) -> InputError:
    return InputError(
        f"{modality} .npy file is truncated: it ends inside its header, after {_bytes(held)}: {file}",
        hint=_TRUNCATED_HINT,
    )


def _npy_bad_header(modality: str, file: Path | str, why: str) -> InputError:
    return InputError(
        f"{modality} .npy file has a damaged header ({why}): {file}",
        hint="re-save the array with numpy.save",
    )


def _size(file: Path, modality: str) -> int:
    try:
        return file.stat().st_size
    except OSError as error:
        raise InputError(
            f"{modality} file cannot be read: {file} ({error})", hint="check the file"
        ) from error


def _bytes(count: int) -> str:
    """``1,234 bytes``: the one way file sizes are written in this module's messages."""
    return f"{count:,} byte" + ("" if count == 1 else "s")
