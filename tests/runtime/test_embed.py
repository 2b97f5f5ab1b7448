"""``anymodal embed`` and ``anymodal similarity`` through click's runner, on the toy modalities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from anymodal.cli import cli
from anymodal.testing import toy
from anymodal.testing.toy_encoder import ToyEncoder


@pytest.fixture(autouse=True)
def with_toy(use_plugins):
    use_plugins(toy)


def npy(path: Path, seed: int) -> Path:
    np.save(path, np.random.default_rng(seed).standard_normal((4, 8)).astype(np.float32))
    return path


def expected(path: Path) -> torch.Tensor:
    """The toy encoder's pooled vector for a file, computed without anymodal's machinery."""
    encoder = ToyEncoder()
    with torch.no_grad():
        return encoder(torch.from_numpy(np.load(path))[None]).pooled[0]


def test_embed_prints_json_in_input_order(tmp_path):
    a, b = npy(tmp_path / "a.npy", 1), npy(tmp_path / "b.npy", 2)
    result = CliRunner().invoke(cli, ["embed", "--toy", str(a), "--toy-alt", str(b), "--toy", str(b)])
    assert result.exit_code == 0, result.output
    assert "note: no encoder weights for toy, toy_alt" in result.stderr
    records = json.loads(result.stdout)
    assert [(r["modality"], Path(r["file"]).name) for r in records] == [
        ("toy", "a.npy"),
        ("toy", "b.npy"),
        ("toy_alt", "b.npy"),
    ]
    for record in records:
        torch.testing.assert_close(
            torch.tensor(record["embedding"]), expected(Path(record["file"])), atol=1e-6, rtol=0
        )


def test_embed_writes_npy_and_uses_the_given_weights(tmp_path):
    a = npy(tmp_path / "a.npy", 1)
    weights = tmp_path / "encoder.safetensors"
    state = ToyEncoder().state_dict()
    save_file({k: torch.zeros_like(v) for k, v in state.items()}, weights)
    out = tmp_path / "vectors.npy"
    result = CliRunner().invoke(
        cli, ["embed", "--toy", str(a), "--weights", str(weights), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"0\ttoy\t{a}\n" and "note:" not in result.stderr
    vectors = np.load(out)
    assert vectors.shape == (1, 16) and not vectors.any()  # zero weights give zero features


def test_similarity_ranks_the_matching_file_first(tmp_path):
    queries = [npy(tmp_path / f"q{i}.npy", i) for i in range(2)]
    candidates = [npy(tmp_path / f"c{i}.npy", i + 10) for i in range(3)] + [npy(tmp_path / "same.npy", 1)]
    args = ["similarity", "--json"]
    for path in queries:
        args += ["--toy", str(path)]
    for path in candidates:
        args += ["--toy-alt", str(path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    ranking = json.loads(result.stdout)
    assert [Path(r["query"]).name for r in ranking] == ["q0.npy", "q1.npy"]  # the fewer files are the queries
    best = ranking[1]["matches"][0]
    assert Path(best["file"]).name == "same.npy" and best["score"] == pytest.approx(1.0, abs=1e-6)
    scores = [m["score"] for m in ranking[0]["matches"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["embed"], "error: no input files given"),
        (["embed", "--toy", "a.npy", "--output", "x.csv"], "--output must end in .json or .npy"),
        (["similarity", "--toy", "a.npy"], "needs files of exactly two modalities, got 1"),
        (["embed", "--toy", "missing.npy"], "error: toy file not found"),
    ],
)
def test_embed_errors_are_one_line(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (1, 2)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
