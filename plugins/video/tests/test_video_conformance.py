"""anymodal's plugin conformance suite, run on the video plugin."""

from __future__ import annotations

from pathlib import Path

from anymodal.testing import PluginConformance
from anymodal.testing.media import write_video


class TestVideoConformance(PluginConformance):
    plugin = "anymodal_video.plugin"
    heavy_modules = ("torch", "numpy", "decord")

    def write_sample(self, modality: str, directory: Path) -> Path:
        return write_video(directory / "sample.mp4", frames=20)
