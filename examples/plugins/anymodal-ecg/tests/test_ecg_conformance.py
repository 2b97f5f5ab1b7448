"""anymodal's conformance suite: registration, import cost, bad files, shapes, layouts, chat, training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from anymodal.testing import PluginConformance

from anymodal_ecg.synthetic import recording


class TestEcgConformance(PluginConformance):
    plugin = "anymodal_ecg.plugin"
    heavy_modules = ("torch", "numpy")

    def write_sample(self, modality: str, directory: Path) -> Path:
        path = directory / "sample.npy"
        np.save(path, recording("normal", np.random.default_rng(0), samples=500))
        return path

    def modality_config(self, modality: str, directory: Path) -> dict[str, Any]:
        # A short input and a narrow net keep the suite's chat and training checks fast.
        return {
            "encoder": {"options": {"width": 16, "tokens": 2, "embed_dim": 16}},
            "preprocess": {"samples": 500},
        }
