"""The ecg loader, preprocessing, encoder and synthetic world."""

from __future__ import annotations

import json
from pathlib import Path

import anymodal
import numpy as np
import pytest
import torch

from anymodal_ecg import plugin, synthetic
from anymodal_ecg.encoder import EcgNet
from anymodal_ecg.loader import load, preprocess
from anymodal_ecg.options import LEADS, EcgNetOptions


def test_npy_and_csv_of_one_recording_load_the_same(tmp_path: Path) -> None:
    array = synthetic.recording("fast", np.random.default_rng(1))
    np.save(tmp_path / "a.npy", array)
    np.savetxt(
        tmp_path / "a.csv", array.T, fmt="%.6f", delimiter=",", header="I,II,III", comments=""
    )
    from_npy, from_csv = load(tmp_path / "a.npy"), load(tmp_path / "a.csv")
    assert from_npy.shape == (LEADS, array.shape[1]) and from_npy.dtype == np.float32
    np.testing.assert_allclose(from_csv, array, atol=1e-5)


def test_a_samples_by_leads_array_is_turned_around(tmp_path: Path) -> None:
    array = synthetic.recording("slow", np.random.default_rng(2))
    np.save(tmp_path / "t.npy", array.T)
    np.testing.assert_array_equal(load(tmp_path / "t.npy"), array)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((5, 2500), dtype=np.float32), r"3"),
        (np.ones((3, 100), dtype=np.float32), r"holds 100 samples per lead, at least 250"),
        (np.full((3, 1000), 0.5, dtype=np.float32), r"is flat"),
    ],
)
def test_bad_recordings_are_input_errors_naming_the_file(
    tmp_path: Path, array: np.ndarray, message: str
) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(anymodal.InputError, match=message) as caught:
        load(path)
    assert "bad.npy" in str(caught.value)


def test_a_csv_with_a_text_cell_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    rows = "\n".join(["I,II,III"] + ["0.1,0.2,0.3"] * 300 + ["0.1,oops,0.3"])
    path.write_text(rows + "\n")
    with pytest.raises(anymodal.InputError, match="bad.csv"):
        load(path)


def test_preprocessing_removes_baseline_and_scale_and_pads() -> None:
    array = synthetic.recording("normal", np.random.default_rng(3), samples=1000)
    tensor = preprocess(array, samples=1500)
    assert tensor.shape == (LEADS, 1500) and tensor.dtype == torch.float32
    assert tensor[:, 1000:].abs().sum() == 0
    torch.testing.assert_close(preprocess(array * 1000 + 7, samples=1000), tensor[:, :1000])
    with pytest.raises(anymodal.UsageError, match="samples must be an integer of at least 250"):
        preprocess(array, samples=10)


def test_the_encoder_gives_its_geometry_and_takes_what_the_preprocessing_emits() -> None:
    options = EcgNetOptions(width=16, tokens=4, embed_dim=8)
    emitted, taken = plugin.emits({"samples": 2500}), plugin.takes("ecg", options)
    assert anymodal.layout_mismatch(emitted, taken) is None
    output = EcgNet(options)(torch.randn(2, LEADS, 2500))
    assert output.features.shape == (2, 4, 16) and output.pooled.shape == (2, 8)
    other = plugin.takes("ecg", EcgNetOptions(leads=12))
    assert anymodal.layout_mismatch(emitted, other) == "leads: 3 != 12"


def test_bad_encoder_options_are_usage_errors() -> None:
    with pytest.raises(anymodal.UsageError, match="option tokens must be a positive integer"):
        EcgNetOptions(tokens=0)


def test_the_synthetic_world_is_seeded_and_its_rhythms_differ_in_rate(tmp_path: Path) -> None:
    synthetic.main([str(tmp_path / "a"), "--train", "8", "--held-out", "4", "--encoder-steps", "0"])
    synthetic.main([str(tmp_path / "b"), "--train", "8", "--held-out", "4", "--encoder-steps", "0"])
    first = (tmp_path / "a" / "train" / "conversations.jsonl").read_text()
    assert first == (tmp_path / "b" / "train" / "conversations.jsonl").read_text()
    assert (tmp_path / "a/train/0001.npy").read_bytes() == (
        tmp_path / "b/train/0001.npy"
    ).read_bytes()
    records = [json.loads(line) for line in first.splitlines()]
    assert [r["meta"]["attributes"]["rhythm"] for r in records[:4]] == list(synthetic.RHYTHMS)
    assert records[4]["ecg"] == "0004.csv" and load(tmp_path / "a/train/0004.csv").shape[0] == LEADS
    assert records[1]["conversations"][1]["value"] == "The rhythm is fast."
    assert records[1]["meta"]["turns"][0]["checks"]["rhythm"]["expect"] == ["fast"]
    rates = {
        r: synthetic.beat_times(r, np.random.default_rng(0), 10.0)[1] for r in synthetic.RHYTHMS
    }
    assert rates["slow"] < 55 < rates["normal"] < 100 < rates["fast"]


def test_the_pretrained_encoder_loads_strictly(tmp_path: Path) -> None:
    synthetic.main([str(tmp_path), "--train", "8", "--held-out", "4", "--encoder-steps", "2"])
    from safetensors.torch import load_file

    EcgNet(EcgNetOptions()).load_state_dict(
        load_file(tmp_path / "ecg-cnn.safetensors"), strict=True
    )
