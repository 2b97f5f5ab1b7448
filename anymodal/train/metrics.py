"""Training metrics: ``metrics.jsonl`` beside the checkpoints, TensorBoard when installed, and a
progress bar with loss, learning rate and throughput. Only the main process writes.

On resume the JSONL file is cut back to the resumed step, so steps redone after an interruption
are not listed twice.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    def __init__(self, output_dir: Path, enabled: bool, start_step: int, total_steps: int) -> None:
        self.enabled = enabled
        self.file = output_dir / METRICS_FILE
        self._bar: Any = None
        self._board: Any = None
        if not enabled:
            return
        output_dir.mkdir(parents=True, exist_ok=True)
        _truncate_after(self.file, start_step)
        self._stream = self.file.open("a")
        self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._board = SummaryWriter(str(output_dir / "tensorboard"), purge_step=start_step + 1)

    def step(self, step: int, *, log_every: int, **values: Any) -> None:
        """Record one optimizer step's values; the JSONL file gets every step."""
        if not self.enabled:
            return
        self._write({"step": step, **values})
        self._bar.update(1)
        if step % log_every == 0:
            self._bar.set_postfix(
                loss=f"{values['loss']:.4f}",
                lr=f"{values['lr']:.2e}",
                samples_s=f"{values['samples_per_s']:.1f}",
            )

    def eval(self, step: int, values: Mapping[str, float]) -> None:
        """Record the held-out split's figures (``{"loss": ...}``) as ``eval_<name>``."""
        if self.enabled:
            self._write({"step": step, **{f"eval_{name}": value for name, value in values.items()}})
            shown = ", ".join(f"{name.replace('_', ' ')} {value:.4f}" for name, value in values.items())
            self._bar.write(f"step {step}: eval {shown}")

    def close(self) -> None:
        if not self.enabled:
            return
        self._stream.close()
        self._bar.close()
        if self._board is not None:
            self._board.close()

    def _write(self, record: dict[str, Any]) -> None:
        record["time"] = round(time.time(), 3)
        self._stream.write(json.dumps(record) + "\n")
        self._stream.flush()
        if self._board is not None:
            for key, value in record.items():
                if key not in ("step", "time", "epoch") and isinstance(value, (int, float)):
                    self._board.add_scalar(key, value, record["step"])


def read_metrics(output_dir: Path) -> list[dict[str, Any]]:
    """Every record of a run's ``metrics.jsonl``."""
    file = Path(output_dir) / METRICS_FILE
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def _truncate_after(file: Path, step: int) -> None:
    if not file.is_file():
        return
    kept = [
        line for line in file.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
    ]
    file.write_text("".join(line + "\n" for line in kept))
