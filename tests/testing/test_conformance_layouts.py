"""The conformance suite's layout checks fail a plugin whose preprocessing and encoder disagree, or
whose declarations are not what its preprocessing returns, with a message naming both sides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import anymodal
from anymodal.contract.registry import Registry, load_registry
from anymodal.testing import PluginConformance
from anymodal.testing.toy import ToyEncoderOptions, build_encoder, load_npy, preprocess

NAMES = ("rows", "values")
SUITE = PluginConformance()


def emits_rows(options: Mapping[str, Any]) -> anymodal.TensorLayout:
    return anymodal.TensorLayout((options["tokens"], None), names=NAMES)


def takes_rows(modality: str, options: ToyEncoderOptions) -> anymodal.TensorLayout:
    return anymodal.TensorLayout((options.tokens, options.input_dim), names=NAMES)


class GridPlugin:
    """The toy modality as ``grid``, with the layouts given (None: undeclared)."""

    ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION

    def __init__(
        self,
        emits: Callable[[Mapping[str, Any]], anymodal.TensorLayout] | None = emits_rows,
        takes: Callable[[str, Any], anymodal.TensorLayout] | None = takes_rows,
    ) -> None:
        self.emits, self.takes = emits, takes

    @anymodal.hookimpl
    def register_modalities(self, register: Callable[..., None]) -> None:
        register(
            anymodal.ModalitySpec("grid", load_npy, preprocess, ("npy",), "grid-encoder", emits=self.emits)
        )

    @anymodal.hookimpl
    def register_encoders(self, register: Callable[..., None]) -> None:
        register(
            anymodal.EncoderSpec("grid-encoder", build_encoder, options=ToyEncoderOptions, takes=self.takes)
        )


def registry_of(plugin: GridPlugin) -> Registry:
    return load_registry(entry_points=False, plugins=[plugin], strict=True)


def check_agreement(plugin: GridPlugin, block: dict[str, Any]) -> None:
    registry = registry_of(plugin)
    SUITE.test_preprocessing_emits_the_layout_its_encoder_takes(registry, registry.modalities["grid"], block)


def check_sample(plugin: GridPlugin, block: dict[str, Any], sample: Path) -> None:
    registry = registry_of(plugin)
    SUITE.test_preprocessed_sample_has_the_declared_layouts(
        registry, registry.modalities["grid"], sample, block
    )


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.npy"
    np.save(path, np.ones((6, 8), dtype=np.float32))
    return path


def test_a_plugin_whose_layouts_agree_passes(sample: Path) -> None:
    check_agreement(GridPlugin(), {})
    check_sample(GridPlugin(), {}, sample)
    block = {"preprocess": {"tokens": 3}, "encoder": {"options": {"tokens": 3}}}
    check_agreement(GridPlugin(), block)
    check_sample(GridPlugin(), block, sample)


def test_a_preprocessing_that_emits_what_its_encoder_does_not_take_fails_naming_both() -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        check_agreement(GridPlugin(), {"preprocess": {"tokens": 3}})
    assert str(failed.value) == (
        "the grid preprocessing emits [rows=3, values=*] float32 but encoder grid-encoder takes "
        "[rows=4, values=8] float32 (rows: 3 != 4)"
    )


def test_a_preprocessing_that_returns_another_layout_than_it_declares_fails(sample: Path) -> None:
    def one_row_too_many(options: Mapping[str, Any]) -> anymodal.TensorLayout:
        return anymodal.TensorLayout((options["tokens"] + 1, None), names=NAMES)

    with pytest.raises(pytest.fail.Exception) as failed:
        check_sample(GridPlugin(emits=one_row_too_many, takes=None), {}, sample)
    assert str(failed.value) == (
        "the grid preprocessing returned [4, 8] float32 for sample.npy, but declares it emits "
        "[rows=5, values=*] float32 (rows: 4 != 5)"
    )


def test_a_sample_that_the_encoder_says_it_cannot_take_fails(sample: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        check_sample(GridPlugin(emits=None), {"encoder": {"options": {"input_dim": 6}}}, sample)
    assert str(failed.value) == (
        "the grid preprocessing returned [4, 8] float32 for sample.npy, but encoder grid-encoder "
        "declares it takes [rows=4, values=6] float32 (values: 8 != 6)"
    )


def test_a_plugin_that_declares_no_layouts_skips_the_checks(sample: Path) -> None:
    with pytest.raises(
        pytest.skip.Exception, match=r"^encoder grid-encoder \(EncoderSpec.takes\) declares no"
    ):
        check_agreement(GridPlugin(takes=None), {})
    with pytest.raises(
        pytest.skip.Exception, match=r"^the grid preprocessing \(ModalitySpec.emits\) declares no"
    ):
        check_agreement(GridPlugin(emits=None), {})
    with pytest.raises(pytest.skip.Exception, match="neither the grid preprocessing"):
        check_sample(GridPlugin(emits=None, takes=None), {}, sample)
