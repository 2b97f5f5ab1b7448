"""Fixtures of the speech plugin's tests: media written by the tests themselves (wav/flac/ogg
through soundfile, the rest through PyAV) and tiny Whisper checkpoints in the released format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

MediaWriter = Callable[..., Path]

#: A tiny Whisper: 16-wide encoder and decoder, one layer each, a 64-token vocabulary. The encoder
#: keeps the released 1500 positions, so it reads the real 3000-frame log-mel.
TINY_DIMS: dict[str, int] = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 16,
    "n_audio_head": 2,
    "n_audio_layer": 1,
    "n_vocab": 64,
    "n_text_ctx": 8,
    "n_text_state": 16,
    "n_text_head": 2,
    "n_text_layer": 1,
}


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    """``[samples]`` float32 sine."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def tiny_whisper(seed: int = 0, **dims: int) -> Any:
    """A randomly initialised ``whisper.model.Whisper`` of :data:`TINY_DIMS` (with overrides)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    model = Whisper(ModelDimensions(**{**TINY_DIMS, **dims}))
    # LayerNorms start as ones and zeros: perturb them, so a loader that skipped them is caught.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "ln" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model.eval()


def save_whisper_checkpoint(model: Any, path: Path, half: bool = False) -> Path:
    """Save ``model`` exactly as openai-whisper's released files are laid out."""
    import torch

    state = model.state_dict()
    if half:
        state = {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
    torch.save({"dims": asdict(model.dims), "model_state_dict": state}, path)
    return path


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


@pytest.fixture
def write_av(tmp_path: Path) -> MediaWriter:
    """Write ``[channels, samples]`` audio with PyAV (``codec`` into ``name``), optionally beside a
    small video stream; ``audio=None`` writes a video without sound. Skips when PyAV or a codec is
    missing from this build."""
    av = pytest.importorskip("av", reason="PyAV (the test extra) writes the mp3/mp4 fixtures")

    def write(
        name: str, audio: np.ndarray | None, rate: int = 44100, codec: str = "aac", video_seconds: float = 0.0
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
            audio = np.atleast_2d(audio)
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
