"""Fixtures of the speech plugin's tests: media written by the tests themselves (wav/flac/ogg
through soundfile, the rest through PyAV) and tiny Whisper checkpoints in the released format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from anymodal_speech.testing import save_whisper_checkpoint, tiny_whisper

MediaWriter = Callable[..., Path]


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    """``[samples]`` float32 sine."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def make_tone() -> Callable[..., np.ndarray]:
    return tone


@pytest.fixture
def make_whisper() -> Callable[..., Any]:
    return tiny_whisper


@pytest.fixture
def save_checkpoint() -> Callable[..., Path]:
    return save_whisper_checkpoint


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> tuple[Any, Path]:
    """A tiny Whisper and its fp32 checkpoint file."""
    model = tiny_whisper()
    return model, save_whisper_checkpoint(model, tmp_path / "tiny.pt")


@pytest.fixture
def write_soundfile(tmp_path: Path) -> MediaWriter:
    """Write ``[channels, samples]`` audio with soundfile (wav, flac, ogg)."""
    soundfile = pytest.importorskip("soundfile", reason="soundfile (the test extra) writes wav/flac/ogg")

    def write(name: str, audio: np.ndarray, rate: int = 16000, subtype: str | None = None) -> Path:
        path = tmp_path / name
        soundfile.write(path, np.ascontiguousarray(np.atleast_2d(audio).T), rate, subtype=subtype)
        return path

    return write
