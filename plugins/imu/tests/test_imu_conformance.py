"""anymodal's plugin conformance suite, run on the IMU plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymodal.testing import PluginConformance


class TestImuConformance(PluginConformance):
    plugin = "anymodal_imu.plugin"
    heavy_modules = ("torch", "numpy")

    def write_sample(self, modality: str, directory: Path) -> Path:
        path = directory / "sample.npy"  # 6 channels (accelerometer xyz, gyroscope xyz), 10 s at 200 Hz
        np.save(path, np.random.default_rng(0).standard_normal((6, 2000)).astype(np.float32))
        return path
