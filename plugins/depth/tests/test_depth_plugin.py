"""The depth plugin is found through its entry point."""

from __future__ import annotations

import inspect

from anymodal_depth import plugin, preprocessing

import anymodal
from anymodal.contract.registry import load_registry


def test_entry_point_registers_the_depth_modality() -> None:
    registry = load_registry()
    spec = registry.modalities["depth"]
    owner = registry.owners[("modality", "depth")]
    assert (owner.distribution, owner.version, owner.status) == ("anymodal-depth", "0.1.0", "ok")
    assert spec.file_kinds == (".png", ".npy")
    assert (spec.default_encoder, spec.default_projector) == ("imagebind", "linear")
    assert plugin.ANYMODAL_CONTRACT == anymodal.CONTRACT_VERSION


def test_plugin_defaults_match_the_preprocessing_constants() -> None:
    defaults = {name: p.default for name, p in inspect.signature(plugin.preprocess).parameters.items()}
    assert defaults["image_size"] == 224
    assert defaults["baseline"] == preprocessing.DEFAULT_BASELINE == 0.075
    assert defaults["focal_length"] == preprocessing.DEFAULT_FOCAL_LENGTH
