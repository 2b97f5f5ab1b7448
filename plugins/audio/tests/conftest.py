"""Media written by the tests themselves: wav/flac/ogg through soundfile, mp3/mp4 through PyAV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

AudioWriter = Callable[..., Path]


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


@pytest.fixture
def write_av(tmp_path: Path) -> AudioWriter:
    """Write ``[channels, samples]`` audio with PyAV (``codec`` into ``name``), optionally with a
    small video stream; ``audio=None`` writes a video without an audio stream. Skips when PyAV or
    the codec is missing from this build."""
    av = pytest.importorskip("av", reason="PyAV (the test extra) writes the mp3/mp4 fixtures")

    def write(
        name: str,
        audio: np.ndarray | None,
        rate: int = 44100,
        codec: str = "aac",
        video_seconds: float = 0.0,
    ) -> Path:
        for needed in [codec] * (audio is not None) + ["mpeg4"] * (video_seconds > 0):
            try:
                av.codec.Codec(needed, "w")
            except Exception:  # PyAV raises different classes across versions for a missing codec
                pytest.skip(f"this PyAV build has no {needed} encoder")
        path = tmp_path / name
        container = av.open(str(path), "w")
        video = None
        if video_seconds > 0:
            video = container.add_stream("mpeg4", rate=10)
            video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        if audio is not None:
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            stream = container.add_stream(codec, rate=rate)
            stream.layout = layout
            step = stream.codec_context.frame_size or 1024
            for start in range(0, audio.shape[1], step):
                chunk = np.ascontiguousarray(audio[:, start : start + step], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate, frame.pts = rate, start
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        if video is not None:
            black = np.zeros((32, 32, 3), dtype=np.uint8)
            for _ in range(int(video_seconds * 10)):
                for packet in video.encode(av.VideoFrame.from_ndarray(black, format="rgb24")):
                    container.mux(packet)
            for packet in video.encode(None):
                container.mux(packet)
        container.close()
        return path

    return write
