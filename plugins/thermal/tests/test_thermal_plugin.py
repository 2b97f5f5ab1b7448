"""The thermal plugin is found through its entry point."""

from __future__ import annotations

from anymodal_thermal import plugin

import anymodal
from anymodal.contract.registry import load_registry


def test_entry_point_registers_the_thermal_modality() -> None:
    registry = load_registry()
    spec = registry.modalities["thermal"]
    owner = registry.owners[("modality", "thermal")]
    assert (owner.distribution, owner.version, owner.status) == ("anymodal-thermal", "0.1.0", "ok")
    assert spec.file_kinds == (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
    assert (spec.default_encoder, spec.default_projector) == ("imagebind", "linear")
    assert plugin.ANYMODAL_CONTRACT == anymodal.CONTRACT_VERSION
