"""anymodal's plugin conformance suite, run on the audio plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from anymodal.testing import PluginConformance


class TestAudioConformance(PluginConformance):
    plugin = "anymodal_audio.plugin"
    heavy_modules = ("torch", "numpy", "decord", "soundfile")

    def write_sample(self, modality: str, directory: Path) -> Path:
        path = directory / "sample.wav"
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(24000) / 16000)
        soundfile.write(path, tone.astype(np.float32), 16000)
        return path
