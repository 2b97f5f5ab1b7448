"""Fixtures for the video plugin tests: small videos written with PyAV whose frames say their index.

Each frame is grey (R = G = B, so chroma subsampling loses nothing). Its top half holds 8 vertical
stripes, stripe ``b`` white when bit ``b`` of the frame index is set; its bottom half holds a
texture that moves with the index, so that scaling has something to interpolate.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason="the video tests write their videos with PyAV (extra 'test')")

BITS = 8


def index_frame(index: int, width: int, height: int) -> np.ndarray:
    """The RGB frame ``[height, width, 3]`` uint8 that encodes ``index``."""
    frame = np.zeros((height, width), np.uint8)
    stripe = width // BITS
    for bit in range(BITS):
        if index >> bit & 1:
            frame[: height // 2, bit * stripe : (bit + 1) * stripe] = 255
    y, x = np.mgrid[height // 2 : height, 0:width]
    frame[height // 2 :] = (x * 7 + y * 13 + index * 11) % 200 + 28
    return np.repeat(frame[:, :, None], 3, axis=2)


def read_index(frame: np.ndarray) -> int:
    """Read back the index :func:`index_frame` wrote into a decoded ``[H, W, 3]`` frame."""
    height, width = frame.shape[:2]
    stripe = width // BITS
    row = frame[height // 4, :, 0]
    return sum(1 << bit for bit in range(BITS) if row[bit * stripe + stripe // 2] > 127)


def _write(path: Path, frames: int, fps: int | Fraction, width: int, height: int) -> None:
    # libx264 at crf 0 keeps grey levels exact; mpeg4 (always built) is the fallback.
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast"} if codec == "libx264" else {"qscale": "1"}
        for index in range(frames):
            image = av.VideoFrame.from_ndarray(index_frame(index, width, height), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())


MakeVideo = Callable[..., Path]


@pytest.fixture
def frame_index() -> Callable[[np.ndarray], int]:
    """The decoder of frame indices (test modules cannot import conftest under importlib mode)."""
    return read_index


@pytest.fixture
def make_video(tmp_path: Path) -> MakeVideo:
    """``make_video(frames, fps=10, width=64, height=48, name=...)`` writes an index-coded video."""

    def make(frames: int, fps: int = 10, width: int = 64, height: int = 48, name: str = "") -> Path:
        path = tmp_path / (name or f"v{frames}_{fps}_{width}x{height}.mp4")
        _write(path, frames, fps, width, height)
        return path

    return make


@pytest.fixture
def audio_only_mp4(tmp_path: Path) -> Path:
    """An .mp4 holding one AAC audio stream and no video."""
    path = tmp_path / "speech.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for index in range(16):
            samples = np.zeros((1, 1024), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


WriteContainer = Callable[..., Path]


@pytest.fixture
def write_container(tmp_path: Path) -> WriteContainer:
    """``write_container(name, frames=30, fps=10, codec="mpeg4", options=None)`` writes a 64x48 video
    of index-coded frames into the container ``name``'s suffix names, with muxer ``options`` (for
    example ``{"movflags": "faststart"}``). Skips when this PyAV build cannot encode ``codec`` here
    (PyAV's libvpx fails to open once decord's own FFmpeg libraries are loaded first)."""

    def make(
        name: str,
        frames: int = 30,
        fps: int = 10,
        codec: str = "mpeg4",
        options: dict[str, str] | None = None,
    ) -> Path:
        path = tmp_path / name
        try:
            with av.open(str(path), "w", options=options or {}) as container:
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
                for index in range(frames):
                    image = av.VideoFrame.from_ndarray(index_frame(index, 64, 48), format="rgb24")
                    container.mux(stream.encode(image))
                container.mux(stream.encode())
        except av.error.FFmpegError as error:
            pytest.skip(f"PyAV cannot encode {codec} into {name} in this process: {error}")
        return path

    return make
