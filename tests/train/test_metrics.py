"""metrics.jsonl, its cut-back on resume, and TensorBoard scalars when tensorboard is installed."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from anymodal.train import metrics
from anymodal.train.metrics import MetricsLog, read_metrics


class RecordingWriter:
    instances: ClassVar[list[RecordingWriter]] = []

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.log_dir, self.purge_step = log_dir, purge_step
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False
        RecordingWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch: pytest.MonkeyPatch) -> type[RecordingWriter]:
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = RecordingWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return object() if name == "tensorboard" else real(name, *args)

    monkeypatch.setattr(metrics.importlib.util, "find_spec", find_spec)
    RecordingWriter.instances.clear()
    return RecordingWriter


def values(loss: float) -> dict[str, Any]:
    return {
        "loss": loss,
        "lr": 1e-3,
        "grad_norm": 0.5,
        "samples_per_s": 8.0,
        "tokens_per_s": 100.0,
        "epoch": 0,
    }


def test_every_step_is_a_jsonl_line_and_a_tensorboard_scalar(tmp_path: Path, fake_tensorboard) -> None:
    log = MetricsLog(tmp_path, enabled=True, start_step=0, total_steps=2)
    log.step(1, log_every=1, **values(2.0))
    log.step(2, log_every=1, **values(1.5))
    log.eval(2, {"loss": 1.25})
    log.close()
    records = read_metrics(tmp_path)
    assert [(r["step"], r.get("loss"), r.get("eval_loss")) for r in records] == [
        (1, 2.0, None),
        (2, 1.5, None),
        (2, None, 1.25),
    ]
    [writer] = fake_tensorboard.instances
    assert writer.log_dir == str(tmp_path / "tensorboard") and writer.closed
    assert ("loss", 1.5, 2) in writer.scalars and ("eval_loss", 1.25, 2) in writer.scalars
    assert not [s for s in writer.scalars if s[0] in ("step", "time", "epoch")]


def test_a_resumed_run_cuts_the_file_back_to_its_step(tmp_path: Path) -> None:
    first = MetricsLog(tmp_path, enabled=True, start_step=0, total_steps=5)
    for step in range(1, 6):
        first.step(step, log_every=10, **values(float(step)))
    first.close()
    resumed = MetricsLog(tmp_path, enabled=True, start_step=3, total_steps=5)
    resumed.step(4, log_every=10, **values(40.0))
    resumed.close()
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path)] == [
        (1, 1.0),
        (2, 2.0),
        (3, 3.0),
        (4, 40.0),
    ]


def test_other_processes_write_nothing(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "run", enabled=False, start_step=0, total_steps=1)
    log.step(1, log_every=1, **values(1.0))
    log.close()
    assert not (tmp_path / "run").exists()
