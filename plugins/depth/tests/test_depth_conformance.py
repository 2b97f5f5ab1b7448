"""anymodal's plugin conformance suite, run on the depth plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from anymodal.testing import PluginConformance


class TestDepthConformance(PluginConformance):
    plugin = "anymodal_depth.plugin"
    heavy_modules = ("torch", "numpy", "PIL")

    def write_sample(self, modality: str, directory: Path) -> Path:
        path = directory / "sample.png"  # 16-bit millimetres, as depth cameras write them
        Image.fromarray(np.random.default_rng(0).integers(500, 5000, (60, 80), dtype=np.uint16)).save(path)
        return path
