"""anymodal's plugin conformance suite, run on the thermal plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from anymodal.testing import PluginConformance


class TestThermalConformance(PluginConformance):
    plugin = "anymodal_thermal.plugin"
    heavy_modules = ("torch", "numpy", "PIL")

    def write_sample(self, modality: str, directory: Path) -> Path:
        path = directory / "sample.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80), dtype=np.uint8)).save(path)
        return path
