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
    """Comma-separated numbers, one row per line; the first line may be a header."""
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise anymodal.InputError(
            f"imu CSV is too large: {path} is {size / 2**20:.1f} MB, "
            f"the limit is {MAX_CSV_BYTES / 2**20:g} MB",
            hint="crop the recording, or save it as .npy",
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as error:
        raise anymodal.InputError(
            f"imu CSV is not UTF-8 text: {path} ({error})", hint="save it as a plain-text CSV"
        ) from error
    lines = text.splitlines()
    if len(lines) > MAX_CSV_LINES:
        raise anymodal.InputError(
            f"imu CSV has {len(lines):,} lines, the limit is {MAX_CSV_LINES:,}: {path}",
            hint="crop the recording, or save it as .npy",
        )
    rows: list[list[float]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cells = line.split(",")
        try:
            row = [float(cell) for cell in cells]
        except ValueError:
            if number == 1:  # a header line
                continue
            raise anymodal.InputError(
                f"imu CSV line {number} is not comma-separated numbers: {path}",
                hint="keep at most one header line; every other line must hold numbers only",
            ) from None
        if rows and len(row) != len(rows[0]):
            raise anymodal.InputError(
                f"imu CSV line {number} has {len(row)} values, earlier lines have {len(rows[0])}: {path}",
                hint="every row must have the same number of columns",
            )
        rows.append(row)
    if not rows:
        raise anymodal.InputError(f"imu CSV holds no numbers: {path}", hint="write one sample per line")
    array = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(array).all():
        raise anymodal.InputError(
            f"imu CSV contains NaN or infinite values: {path}", hint="fill or drop the missing samples"
        )
    return array


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
