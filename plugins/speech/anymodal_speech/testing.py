"""Test helpers for the speech plugin and for anyone building on it: tiny Whisper models saved in
openai-whisper's released checkpoint format, and wav files written with the standard library.

Importing this module is cheap; torch and whisper load when a builder is called.
"""

from __future__ import annotations

import wave
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

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


def tiny_whisper(seed: int = 0, **dims: int) -> Any:
    """A randomly initialised ``whisper.model.Whisper`` of :data:`TINY_DIMS` (with overrides)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Whisper(ModelDimensions(**{**TINY_DIMS, **dims}))
        # LayerNorms start as ones and zeros: perturb them, so a loader that skipped them is caught.
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "ln" in name:
                    parameter.add_(0.1 * torch.randn_like(parameter))
    return model.eval()


def save_whisper_checkpoint(model: Any, path: str | Path, half: bool = False) -> Path:
    """Save ``model`` as openai-whisper's released files are laid out: ``{"dims": {...},
    "model_state_dict": {...}}``; ``half`` stores floating tensors as fp16, as released."""
    import torch

    state = model.state_dict()
    if half:
        state = {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
    torch.save({"dims": asdict(model.dims), "model_state_dict": state}, path)
    return Path(path)


def write_wav(path: str | Path, seconds: float = 1.0, freq: float = 220.0, rate: int = 16000) -> Path:
    """A 16-bit mono wav of a sine at ``freq`` Hz with its first four overtones, at ``rate`` Hz."""
    t = np.arange(round(seconds * rate)) / rate
    voiced = np.sum([np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6)], axis=0)
    pcm = (0.3 * voiced / 2.3 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return Path(path)
