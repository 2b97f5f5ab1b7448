"""anymodal's plugin conformance suite, run on the speech plugin with a tiny real-format Whisper."""

from __future__ import annotations

import wave
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from anymodal.testing import PluginConformance


class TestSpeechConformance(PluginConformance):
    plugin = "anymodal_speech.plugin"
    heavy_modules = ("torch", "numpy", "decord", "whisper")

    def write_sample(self, modality: str, directory: Path) -> Path:
        """A 1.5-second 16-bit mono wav: a vowel-like tone with harmonics."""
        t = np.arange(24000) / 16000
        voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
        pcm = (0.2 * voiced * 32767 / 2.5).astype("<i2")
        path = directory / "hello.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(pcm.tobytes())
        return path

    def modality_config(self, modality: str, directory: Path) -> dict[str, Any]:
        """A tiny Whisper (16 wide, one layer each side) saved as openai-whisper saves its models."""
        import torch
        from whisper.model import ModelDimensions, Whisper

        dims = ModelDimensions(
            n_mels=80,
            n_audio_ctx=1500,
            n_audio_state=16,
            n_audio_head=2,
            n_audio_layer=1,
            n_vocab=64,
            n_text_ctx=8,
            n_text_state=16,
            n_text_head=2,
            n_text_layer=1,
        )
        torch.manual_seed(0)
        model = Whisper(dims)
        state = {key: value.half() for key, value in model.state_dict().items()}  # released files are fp16
        path = directory / "tiny-whisper.pt"
        torch.save({"dims": asdict(dims), "model_state_dict": state}, path)
        return {
            "encoder": {"weights": str(path)},
            "projector": {"options": {"num_queries": 4, "num_heads": 2}},
        }
