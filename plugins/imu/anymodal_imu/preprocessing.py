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
from anymodal_imu.plugin import CHANNELS

#: Fewer samples than one of ImageBind's 8-sample IMU patches is not a recording.
MIN_SAMPLES = 8
#: Recordings above this many values are refused before they are read in full (tests lower it).
MAX_ELEMENTS = 60_000_000

MODES = ("crop", "resample")


def load_imu(path: Path) -> np.ndarray:
    """Decode a ``.npy`` or ``.csv`` recording, ``(6, T)`` or ``(T, 6)``, to float32 ``[6, T]``.

    :func:`anymodal.read_array` reads the file and turns ``(T, 6)`` around; ``(6, 6)`` is kept as
    stored (and refused below as too short).
    """
    recording = anymodal.read_array(path, modality="imu", channels=CHANNELS, max_elements=MAX_ELEMENTS)
    samples = recording.shape[1]
    if samples < MIN_SAMPLES:
        raise anymodal.InputError(
            f"imu recording has {samples} samples, at least {MIN_SAMPLES} are needed: {path}",
            hint="pass a longer recording (ImageBind uses 2000 samples, 5 s at 400 Hz)",
        )
    return recording


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
