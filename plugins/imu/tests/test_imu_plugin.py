"""The imu plugin is found through its entry point and costs nothing to import."""

from __future__ import annotations

import subprocess
import sys

from anymodal_imu import plugin

import anymodal
from anymodal.plugins import load_registry


def test_entry_point_registers_the_imu_modality() -> None:
    registry = load_registry()
    spec = registry.modalities["imu"]
    owner = registry.owners[("modality", "imu")]
    assert (owner.distribution, owner.version, owner.status) == ("anymodal-imu", "0.1.0", "ok")
    assert spec.file_kinds == (".npy", ".csv")
    assert (spec.default_encoder, spec.default_projector) == ("imagebind", "linear")
    assert plugin.ANYMODAL_CONTRACT == anymodal.CONTRACT_VERSION


def test_importing_the_plugin_imports_neither_torch_nor_numpy() -> None:
    code = (
        "import sys, anymodal_imu.plugin\n"
        "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
