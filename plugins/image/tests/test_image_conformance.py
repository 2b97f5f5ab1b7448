"""anymodal's plugin conformance suite, run on the image plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from anymodal.testing import PluginConformance


class TestImageConformance(PluginConformance):
    plugin = "anymodal_image.plugin"
    heavy_modules = ("torch", "numpy", "PIL")

    def write_sample(self, modality: str, directory: Path) -> Path:
        path = directory / "sample.png"
        pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        return path
