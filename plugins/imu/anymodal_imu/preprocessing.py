"""Decoding and preprocessing of 6-axis IMU recordings for ImageBind's ``[6, 2000]`` input.

ImageBind ships no IMU loader; its model takes 6 channels (accelerometer x, y, z, then gyroscope
x, y, z) by 2000 time steps (5 s at 400 Hz in Ego4D). Channel order and units are not checked
and values are passed through unchanged: ImageBind's normalisation of IMU data is not published.

A recording is ``(6, T)`` or ``(T, 6)`` with T >= :data:`MIN_SAMPLES`. It becomes exactly
``length`` samples by one of two documented policies (preprocess option ``mode``):

* ``"crop"`` (default): longer recordings keep their central ``length`` samples (the start is
  ``(T - length) // 2``), shorter ones are zero-padded at the end;
* ``"resample"``: linear interpolation of the whole recording onto ``length`` evenly spaced
  points, first and last sample kept (stretches or squeezes time).
"""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np
import torch

import anymodal

CHANNELS = 6
#: Fewer samples than one of ImageBind's 8-sample IMU patches is not a recording.
MIN_SAMPLES = 8
#: ``.npy`` recordings above this many values are refused before reading (tests lower it).
MAX_ELEMENTS = 60_000_000
#: CSV files above this size are refused before reading (tests lower it).
MAX_CSV_BYTES = 64 * 1024 * 1024
#: CSV files with more lines than this are refused (tests lower it).
MAX_CSV_LINES = 1_000_000

MODES = ("crop", "resample")


def load_imu(path: Path) -> np.ndarray:
    """Decode a ``.npy`` or ``.csv`` recording to float32 ``[6, T]``."""
    if path.suffix.lower() == ".csv":
        array = _read_csv(path)
    else:
        array = anymodal.load_npy(path, modality="imu", max_elements=MAX_ELEMENTS)
    return _channels_first(array, path)


def _read_csv(path: Path) -> np.ndarray:
    """Comma-separated numbers, one row per line; the first line may be a header.

    The file is read line by line into a flat buffer of float64 values (8 bytes a value), so a
    long recording never exists as Python lists of floats.
    """
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise anymodal.InputError(
            f"imu CSV is too large: {path} is {size / 2**20:.1f} MB, "
            f"the limit is {MAX_CSV_BYTES / 2**20:g} MB",
            hint="crop the recording, or save it as .npy",
        )
    values = array("d")
    columns = 0
    try:
        with path.open(encoding="utf-8-sig", newline=None) as stream:
            for number, line in enumerate(stream, 1):
                if number > MAX_CSV_LINES:
                    raise anymodal.InputError(
                        f"imu CSV has more than {MAX_CSV_LINES:,} lines (the limit): {path}",
                        hint="crop the recording, or save it as .npy",
                    )
                if not line.strip():
                    continue
                row = _parse_row(line, number, path)
                if row is None:  # a header line
                    continue
                if columns and len(row) != columns:
                    raise _ragged(line, number, len(row), columns, path)
                columns = columns or len(row)
                values.extend(row)
    except (UnicodeDecodeError, OSError) as error:
        raise anymodal.InputError(
            f"imu CSV is not UTF-8 text: {path} ({error})", hint="save it as a plain-text CSV"
        ) from error
    if not values:
        raise anymodal.InputError(f"imu CSV holds no numbers: {path}", hint="write one sample per line")
    table = np.frombuffer(values, dtype=np.float64).reshape(-1, columns)
    if not np.isfinite(table).all():
        raise anymodal.InputError(
            f"imu CSV contains NaN or infinite values: {path}", hint="fill or drop the missing samples"
        )
    return table


def _parse_row(line: str, number: int, path: Path) -> list[float] | None:
    """The numbers of one line; None for a header (first line only); InputError otherwise."""
    cells = line.split(",")
    try:
        return [float(cell) for cell in cells]
    except ValueError:
        if number == 1:
            return None
    bad = next(cell.strip() for cell in cells if not _is_number(cell))
    raise anymodal.InputError(
        f"imu CSV line {number} is not comma-separated numbers ({bad[:20]!r} is not a number): {path}",
        hint="keep at most one header line; every other line must hold numbers only",
    )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _ragged(line: str, number: int, count: int, columns: int, path: Path) -> anymodal.InputError:
    """A row of the wrong width; the last line, short and without a line end, is a cut-short file."""
    if count < columns and not line.endswith("\n"):
        return anymodal.InputError(
            f"imu CSV is truncated: its last line ({number}) holds {count} of {columns} values "
            f"and no line end: {path}",
            hint="the file was cut short; export the recording again",
        )
    return anymodal.InputError(
        f"imu CSV line {number} has {count} values, earlier lines have {columns}: {path}",
        hint="every row must have the same number of columns",
    )


def _channels_first(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim != 2 or CHANNELS not in array.shape:
        raise anymodal.InputError(
            f"imu recording must have shape (6, T) or (T, 6), got {array.shape}: {path}",
            hint="6 channels: accelerometer x, y, z then gyroscope x, y, z",
        )
    channels_first = array if array.shape[0] == CHANNELS else array.T
    samples = channels_first.shape[1]
    if samples < MIN_SAMPLES:
        raise anymodal.InputError(
            f"imu recording has {samples} samples, at least {MIN_SAMPLES} are needed: {path}",
            hint="pass a longer recording (ImageBind uses 2000 samples, 5 s at 400 Hz)",
        )
    return np.ascontiguousarray(channels_first, dtype=np.float32)


def fit_length(recording: np.ndarray, length: int, mode: str = "crop") -> np.ndarray:
    """``[6, T]`` -> ``[6, length]`` by centre crop / end zero-padding, or by linear resampling."""
    samples = recording.shape[1]
    if mode == "resample":
        if samples == length:
            return recording
        old = np.linspace(0.0, 1.0, samples)
        new = np.linspace(0.0, 1.0, length)
        return np.stack([np.interp(new, old, channel) for channel in recording]).astype(np.float32)
    if samples >= length:
        start = (samples - length) // 2
        return recording[:, start : start + length]
    padded = np.zeros((recording.shape[0], length), dtype=np.float32)
    padded[:, :samples] = recording
    return padded


def preprocess_imu(recording: np.ndarray, length: int = 2000, mode: str = "crop") -> torch.Tensor:
    """``[6, T]`` recording -> float32 ``[6, length]`` (see the module docstring for ``mode``)."""
    if isinstance(length, bool) or not isinstance(length, int) or length < MIN_SAMPLES:
        raise anymodal.UsageError(
            f"imu preprocess option length must be an integer >= {MIN_SAMPLES}, got {length!r}",
            hint="set modalities.imu.preprocess.length, e.g. 2000",
        )
    if mode not in MODES:
        raise anymodal.UsageError(
            f"imu preprocess option mode must be one of {', '.join(MODES)}, got {mode!r}",
            hint="set modalities.imu.preprocess.mode",
        )
    fitted = fit_length(np.asarray(recording, dtype=np.float32), length, mode)
    return torch.from_numpy(np.ascontiguousarray(fitted, dtype=np.float32))
