"""A model whose weights are missing fails before loading anything, naming every missing file."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal.config import load_config
from anymodal.config.model_files import check_model_files, required_files, untrained_parts
from anymodal.contract.errors import ModelLoadError
from anymodal.contract.registry import load_registry
from anymodal.runtime.model import AnyModalModel
from anymodal.testing import toy


def config_file(tmp_path: Path, extra: str = "") -> Path:
    file = tmp_path / "model.yaml"
    file.write_text(
        "model:\n"
        "  llm: {path: ./vicuna, adapter: ./adapter}\n"
        "  modalities:\n"
        "    toy: {encoder: {weights: ./shared.safetensors}, projector: {weights: ./toy.safetensors}}\n"
        "    toy_alt: {encoder: {weights: ./shared.safetensors}}\n" + extra
    )
    return file


def test_every_missing_file_is_named_once_with_its_keys(tmp_path: Path):
    registry = load_registry(plugins=[toy])
    file = config_file(tmp_path, '  weights_help: "run anymodal convert pandagpt first"\n')
    config = load_config(file, registry=registry).config.model
    with pytest.raises(ModelLoadError) as caught:
        AnyModalModel.from_config(config, registry)
    assert str(caught.value) == (
        f"the model is missing 4 files: {tmp_path / 'vicuna'} (model.llm.path); "
        f"{tmp_path / 'adapter'} (model.llm.adapter); "
        f"{tmp_path / 'shared.safetensors'} (model.modalities.toy.encoder.weights, "
        "model.modalities.toy_alt.encoder.weights); "
        f"{tmp_path / 'toy.safetensors'} (model.modalities.toy.projector.weights) "
        "(hint: run anymodal convert pandagpt first)"
    )


def test_files_that_exist_and_hub_ids_pass(tmp_path: Path):
    registry = load_registry(plugins=[toy])
    for name in ("vicuna", "adapter"):
        (tmp_path / name).mkdir()
    for name in ("shared.safetensors", "toy.safetensors"):
        (tmp_path / name).write_bytes(b"x")
    config = load_config(config_file(tmp_path), registry=registry).config.model
    check_model_files(config)
    hub = load_config(config_file(tmp_path), ["model.llm.path=lmsys/vicuna-7b-v1.5"], registry=registry)
    assert ("model.llm.path", "lmsys/vicuna-7b-v1.5") not in required_files(hub.config.model)
    assert len(required_files(hub.config.model)) == 4


def test_untrained_parts_are_those_without_weights_and_the_random_builtin_llm(tmp_path: Path):
    registry = load_registry(plugins=[toy])
    config = load_config(config_file(tmp_path), registry=registry).config.model
    assert untrained_parts(config) == ["toy_alt projector (mlp)"]
    tiny = load_config(
        config_file(tmp_path), ["model.llm.path=builtin:tiny-untrained"], registry=registry
    ).config.model
    assert untrained_parts(tiny) == ["the LLM (builtin:tiny-untrained)", "toy_alt projector (mlp)"]
    bare = load_config(None, ["model.modalities={toy: {}}"], registry=registry).config.model
    assert untrained_parts(bare)[-2:] == ["toy encoder (toy-encoder)", "toy projector (linear)"]


def test_the_shipped_demo_model_has_no_untrained_part():
    assert untrained_parts(load_config(None, registry=load_registry()).config.model) == []
