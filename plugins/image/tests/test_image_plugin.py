"""The image plugin is found through its entry point."""

from __future__ import annotations

from anymodal_image import plugin

import anymodal
from anymodal.contract.registry import load_registry


def test_entry_point_registers_the_image_modality() -> None:
    registry = load_registry()
    spec = registry.modalities["image"]
    owner = registry.owners[("modality", "image")]
    assert (owner.name, owner.distribution, owner.version, owner.status) == (
        "image",
        "anymodal-image",
        "0.1.0",
        "ok",
    )
    assert spec.file_kinds == (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
    assert (spec.default_encoder, spec.default_projector) == ("imagebind", "linear")
    assert (spec.placeholder, spec.flag) == ("<image>", "--image")
    assert plugin.ANYMODAL_CONTRACT == anymodal.CONTRACT_VERSION
