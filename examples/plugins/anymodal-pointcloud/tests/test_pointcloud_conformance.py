"""anymodal's conformance suite: registration, import cost, bad files, shapes, chat, training.

The suite's model loads a small PointNet from a checkpoint in the format real weights come in (a
safetensors state dict of the encoder), so core's strict weight loading is part of the check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from anymodal.testing import PluginConformance
from safetensors.torch import save_file

from anymodal_pointcloud.encoder import PointNetEncoder
from anymodal_pointcloud.options import PointNetOptions

#: A small encoder for the suite's model (the defaults are 256 wide).
TINY = {"width": 32, "embed_dim": 16, "tokens": 4}


def write_cloud(path: Path, points: int = 300, seed: int = 0) -> Path:
    """A scan-like cloud: points on a unit sphere plus a flat ground plane below it."""
    rng = np.random.default_rng(seed)
    sphere = rng.standard_normal((points // 2, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    rest = points - len(sphere)
    ground = np.column_stack([rng.uniform(-3, 3, (rest, 2)), np.full(rest, -1.5)])
    np.save(path, np.concatenate([sphere, ground]).astype(np.float32))
    return path


class TestPointcloudConformance(PluginConformance):
    plugin = "anymodal_pointcloud.plugin"
    heavy_modules = ("torch", "numpy")

    def write_sample(self, modality: str, directory: Path) -> Path:
        return write_cloud(directory / "sample.npy")

    def modality_config(self, modality: str, directory: Path) -> dict[str, Any]:
        encoder = PointNetEncoder(PointNetOptions(**TINY, seed=7))
        weights = directory / "pointnet_tiny.safetensors"
        save_file(
            {key: value.contiguous() for key, value in encoder.state_dict().items()}, str(weights)
        )
        return {
            "encoder": {"weights": str(weights), "options": TINY},
            "preprocess": {"num_points": 64},
        }


def test_the_tiny_checkpoint_is_not_the_default_initialisation() -> None:
    # The suite's checkpoint must differ from what the runtime would build without it, or
    # loading it would go unnoticed.
    trained = PointNetEncoder(PointNetOptions(**TINY, seed=7)).state_dict()
    default = PointNetEncoder(PointNetOptions(**TINY)).state_dict()
    assert any(not torch.equal(trained[key], default[key]) for key in trained)
