"""The imu plugin is found through its entry point."""

from __future__ import annotations

from anymodal_imu import plugin

import anymodal
from anymodal.contract.registry import load_registry


def test_entry_point_registers_the_imu_modality() -> None:
    registry = load_registry()
    spec = registry.modalities["imu"]
    owner = registry.owners[("modality", "imu")]
    assert (owner.distribution, owner.version, owner.status) == ("anymodal-imu", "0.1.0", "ok")
    assert spec.file_kinds == (".npy", ".csv")
    assert (spec.default_encoder, spec.default_projector) == ("imagebind", "linear")
    assert plugin.ANYMODAL_CONTRACT == anymodal.CONTRACT_VERSION
