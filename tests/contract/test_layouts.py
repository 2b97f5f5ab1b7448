"""Tensor layouts: what a preprocessing emits against what an encoder takes."""

from __future__ import annotations

from typing import Any

import pytest

from anymodal import EncoderSpec, ModalitySpec, TensorLayout, layout_mismatch
from anymodal.contract.layouts import declared_layouts, emitted_layout, layout_disagreement

ECG = ("leads", "samples")


def test_a_layout_reads_as_its_sizes_names_and_dtype() -> None:
    assert str(TensorLayout((12, None), names=ECG)) == "[leads=12, samples=*] float32"
    assert str(TensorLayout([77], dtype="int64")) == "[77] int64"
    assert TensorLayout([12, None]).dims == (12, None)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"dims": (12, -1)}, "dims are sizes"),
        ({"dims": (12, 2.5)}, "dims are sizes"),
        ({"dims": (True,)}, "dims are sizes"),
        ({"dims": (12, None), "names": ("leads",)}, "names all of its 2 dims or none"),
        ({"dims": (12,), "dtype": "torch.float32"}, "without 'torch.'"),
    ],
)
def test_a_malformed_layout_is_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TensorLayout(**arguments)


@pytest.mark.parametrize(
    ("emitted", "taken", "reason"),
    [
        (TensorLayout((12, 5000), names=ECG), TensorLayout((12, 5000), names=ECG), None),
        (TensorLayout((12, 5000), names=ECG), TensorLayout((12, None), names=ECG), None),
        (TensorLayout((None, 5000)), TensorLayout((12, 5000)), None),
        (TensorLayout((12, 5000), names=ECG), TensorLayout((8, None), names=ECG), "leads: 12 != 8"),
        (TensorLayout((12, 5000)), TensorLayout((8, 4000)), "dim 0: 12 != 8, dim 1: 5000 != 4000"),
        (TensorLayout((12, 5000)), TensorLayout((1, 12, 5000)), "rank: 2 != 3"),
        (TensorLayout((12,), dtype="float16"), TensorLayout((12,)), "dtype: float16 != float32"),
        (TensorLayout((12,), names=("leads",)), TensorLayout((8,), dtype="int64"),
         "leads: 12 != 8, dtype: float32 != int64"),
    ],
)  # fmt: skip
def test_layout_mismatch_names_every_difference(
    emitted: TensorLayout, taken: TensorLayout, reason: str | None
) -> None:
    assert layout_mismatch(emitted, taken) == reason


def _fail(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("checking layouts must not load or build anything")


def ecg_preprocess(signal: Any, samples: int = 5000, leads: int = 12) -> Any:
    return _fail(signal, samples, leads)


ECG_SPEC = ModalitySpec(
    name="ecg",
    loader=_fail,
    preprocess=ecg_preprocess,
    file_kinds=("npy",),
    default_encoder="ecg-net",
    emits=lambda options: TensorLayout((options["leads"], options["samples"]), names=ECG),
)
ECG_NET = EncoderSpec(
    name="ecg-net", build=_fail, takes=lambda modality, leads: TensorLayout((leads, None), names=ECG)
)


def test_the_preprocessing_declares_its_layout_for_its_options_with_defaults_filled_in() -> None:
    assert emitted_layout(ECG_SPEC, {}) == TensorLayout((12, 5000), names=ECG)
    assert emitted_layout(ECG_SPEC, {"samples": 100}) == TensorLayout((12, 100), names=ECG)
    assert emitted_layout(ModalitySpec("plain", _fail, _fail, ("npy",), "ecg-net"), {}) is None


def test_a_disagreement_names_the_modality_the_encoder_and_both_layouts() -> None:
    assert layout_disagreement(ECG_SPEC, {}, ECG_NET, 12) is None
    assert layout_disagreement(ECG_SPEC, {}, ECG_NET, 8) == (
        "the ecg preprocessing emits [leads=12, samples=5000] float32 but encoder ecg-net takes "
        "[leads=8, samples=*] float32 (leads: 12 != 8)"
    )
    assert layout_disagreement(ECG_SPEC, {"leads": 8}, ECG_NET, 8) is None


def test_nothing_is_checked_unless_both_sides_declare_a_layout() -> None:
    silent = EncoderSpec(name="silent", build=_fail)
    assert declared_layouts(ECG_SPEC, {}, silent, None) is None
    assert layout_disagreement(ECG_SPEC, {}, silent, None) is None
    for_others = EncoderSpec(name="other", build=_fail, takes=lambda modality, options: None)
    assert declared_layouts(ECG_SPEC, {}, for_others, None) is None
    plain = ModalitySpec("plain", _fail, _fail, ("npy",), "ecg-net")
    assert declared_layouts(plain, {}, ECG_NET, 8) is None
