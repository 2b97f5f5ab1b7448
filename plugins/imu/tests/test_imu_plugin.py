"""The imu plugin is found through its entry point, and declares the layout it emits."""

from __future__ import annotations

from pathlib import Path

import pytest
from anymodal_imu import plugin

import anymodal
from anymodal.config import load_config
from anymodal.contract.registry import load_registry
from anymodal.testing import registered_modality


def test_entry_point_registers_the_imu_modality() -> None:
    registry = load_registry()
    spec = registry.modalities["imu"]
    owner = registry.owners[("modality", "imu")]
    assert (owner.distribution, owner.version, owner.status) == ("anymodal-imu", "0.1.0", "ok")
    assert spec.file_kinds == (".npy", ".csv")
    assert (spec.default_encoder, spec.default_projector) == ("imagebind", "linear")
    assert plugin.ANYMODAL_CONTRACT == anymodal.CONTRACT_VERSION


def test_the_preprocessing_emits_imagebinds_imu_input_and_a_config_that_disagrees_is_refused(
    tmp_path: Path,
) -> None:
    spec = registered_modality(plugin)
    assert spec.emits is not None
    assert str(spec.emits({"length": 1000, "mode": "resample"})) == "[channels=6, samples=1000] float32"
    config = tmp_path / "model.yaml"
    config.write_text("model:\n  modalities:\n    imu: {preprocess: {length: 1000}}\n")
    with pytest.raises(anymodal.ConfigError) as refused:
        load_config(config, registry=load_registry())
    assert refused.value.issues == [
        "model.modalities.imu: the imu preprocessing emits [channels=6, samples=1000] float32 but "
        "encoder imagebind takes [channels=6, samples=2000] float32 (samples: 1000 != 2000)"
    ]
    # An ImageBind whose IMU trunk reads 1000 samples agrees.
    encoder = "encoder: {options: {config: {imu_length: 1000}}}"
    config.write_text(f"model:\n  modalities:\n    imu: {{preprocess: {{length: 1000}}, {encoder}}}\n")
    loaded = load_config(config, registry=load_registry())
    assert loaded.config.model.modalities["imu"].preprocess == {"length": 1000}
