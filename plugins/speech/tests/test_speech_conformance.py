"""anymodal's plugin conformance suite, run on the speech plugin with a tiny real-format Whisper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anymodal_speech.testing import save_whisper_checkpoint, tiny_whisper, write_wav

from anymodal.testing import PluginConformance


class TestSpeechConformance(PluginConformance):
    plugin = "anymodal_speech.plugin"
    heavy_modules = ("torch", "numpy", "decord", "whisper")

    def write_sample(self, modality: str, directory: Path) -> Path:
        return write_wav(directory / "hello.wav", seconds=1.5, freq=150.0)

    def modality_config(self, modality: str, directory: Path) -> dict[str, Any]:
        """A tiny Whisper (16 wide, one layer each side), saved in fp16 as Whisper's files are."""
        checkpoint = save_whisper_checkpoint(tiny_whisper(), directory / "tiny-whisper.pt", half=True)
        return {
            "encoder": {"weights": str(checkpoint)},
            "projector": {"options": {"num_queries": 4, "num_heads": 2}},
        }
