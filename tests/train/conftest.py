"""Shared pieces for trainer tests: a tiny LLM, the toy modality, and data written as real files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anymodal.contract.registry import Registry, load_registry
from anymodal.testing import save_tiny_llm, toy


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llm(tmp_path_factory.mktemp("llm") / "llm", seed=0)


@pytest.fixture
def toy_registry() -> Registry:
    return load_registry(plugins=[toy])


def answer(index: int) -> str:
    return "plus" if index % 2 else "minus"


@pytest.fixture
def toy_data(tmp_path: Path) -> Callable[..., Path]:
    """Write ``count`` toy records (an .npy of +1 or -1 and the answer "plus"/"minus") as JSONL."""

    def write(count: int = 16, name: str = "data.jsonl") -> Path:
        records = []
        for index in range(count):
            value = 1.0 if index % 2 else -1.0
            np.save(
                tmp_path / f"x{index}.npy", np.full((4, 8), value * (1 + index / count), dtype=np.float32)
            )
            conversation = [
                {"from": "human", "value": "<toy>\nWhat is it?"},
                {"from": "gpt", "value": answer(index)},
            ]
            records.append({"id": index, "toy": f"x{index}.npy", "conversations": conversation})
        file = tmp_path / name
        file.write_text("".join(json.dumps(record) + "\n" for record in records))
        return file

    return write


@pytest.fixture
def train_config(tmp_path: Path, tiny_llm: Path, toy_data: Callable[..., Path]) -> Path:
    """A stage-2 training config on the toy data; tests adjust it with overrides."""
    data = toy_data()
    file = tmp_path / "train.yaml"
    file.write_text(
        f"model:\n  llm: {{path: {tiny_llm}}}\n  template: plain\n  modalities: {{toy: {{}}}}\n"
        f"train:\n  stage: 2\n  data: {{train: {data}, eval_fraction: 0.25}}\n"
        f"  output_dir: {tmp_path / 'run'}\n  batch_size: 4\n  max_steps: 6\n  save_every: 3\n"
        "  optimizer: {lr: 0.01}\n"
    )
    return file
