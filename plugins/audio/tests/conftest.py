"""Media written by the tests themselves: wav/flac/ogg through soundfile, mp3/mp4 through PyAV."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def make_tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    """``[samples]`` float32 sine."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def find_peak_frequency(signal: np.ndarray, rate: int) -> float:
    """Frequency in Hz of the largest FFT bin of a 1-D signal."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1.0 / rate)[np.argmax(spectrum)])


@pytest.fixture
def tone() -> Callable[..., np.ndarray]:
    return make_tone


@pytest.fixture
def peak_frequency() -> Callable[[np.ndarray, int], float]:
    return find_peak_frequency
