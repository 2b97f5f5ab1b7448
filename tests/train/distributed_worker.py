"""One process of the 2-process training test (tests/train/test_distributed.py), launched by torchrun.

Usage: ``distributed_worker.py CONFIG RESULT_DIR [--resume CHECKPOINT] [--set key=value ...]
[--slow-save SECONDS]`` (the last delays rank 1 before each ``save_state``).

It registers the toy modality without entry points, trains as the config says, and writes into
RESULT_DIR, per process (N is the rank):

* ``rankN.json``: what accelerate made of the launch (rank, process count, distributed type,
  backend), the losses and eval loss ``fit`` returned, and which records this process loaded, in
  order, per split (train/eval), to show how the data was sharded;
* ``rankN-initial.safetensors`` / ``rankN-final.safetensors``: every trainable tensor (projector and
  LoRA) before and after ``fit``, by the trainer's parameter names.

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

import anymodal.train.trainer as trainer_module
from anymodal.config import load_config
from anymodal.contract.registry import load_registry
from anymodal.testing import toy
from anymodal.train.batches import ExampleDataset
from anymodal.train.data import MediaRef
from anymodal.train.examples import Example
from anymodal.train.trainer import Trainer

#: The split each list of examples belongs to, by id(); filled in once the trainer has loaded its data.
SPLITS: dict[int, str] = {}
#: Record sources (``data.jsonl:LINE``) in the order this process loaded them, per split.
LOADS: dict[str, list[str]] = {"train": [], "eval": []}


class RecordingDataset(ExampleDataset):
    """The trainer's dataset, noting every record it hands to the data loader."""

    def __init__(self, examples: Sequence[Example], load: Callable[[MediaRef], Any]) -> None:
        super().__init__(examples, load)
        self.split = SPLITS[id(examples)]

    def __getitem__(self, index: int) -> tuple[Example, list[Any]]:
        example, inputs = super().__getitem__(index)
        LOADS[self.split].append(example.source)
        return example, inputs


def save_tensors(parameters: dict[str, torch.nn.Parameter], file: Path) -> None:
    save_file({name: p.detach().to("cpu").contiguous().clone() for name, p in parameters.items()}, str(file))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("result_dir", type=Path)
    parser.add_argument("--resume", default=None, help="a checkpoint directory to resume from")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="a config override")
    parser.add_argument(
        "--slow-save", type=float, default=0.0, help="seconds rank 1 waits before each save_state"
    )
    args = parser.parse_args()

    registry = load_registry(plugins=[toy])
    loaded = load_config(args.config, args.overrides, registry=registry)
    trainer = Trainer(loaded, registry, resume=args.resume, log=lambda line: print(line, file=sys.stderr))
    SPLITS.update({id(trainer.data.train): "train", id(trainer.data.eval): "eval"})
    trainer_module.ExampleDataset = RecordingDataset  # type: ignore[misc]  # the name fit() builds with

    accelerator = trainer.accelerator
    rank = accelerator.process_index
    if rank == 1 and args.slow_save:
        # A process that reaches a checkpoint later than the main one (a slower host, a busier
        # core): its share of the state (its RNG file) must still end up in the checkpoint.
        save_state = accelerator.save_state

        def slow_save_state(*positional: Any, **keywords: Any) -> Any:
            time.sleep(args.slow_save)
            return save_state(*positional, **keywords)

        accelerator.save_state = slow_save_state
    args.result_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(trainer.trainable, args.result_dir / f"rank{rank}-initial.safetensors")
    result = trainer.fit()
    save_tensors(trainer.trainable, args.result_dir / f"rank{rank}-final.safetensors")
    report = {
        "rank": rank,
        "num_processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "step": result.step,
        "losses": result.losses,
        "eval_loss": result.eval_loss,
        "last_checkpoint": str(result.last_checkpoint),
        "loads": LOADS,
    }
    (args.result_dir / f"rank{rank}.json").write_text(json.dumps(report, indent=2) + "\n")
    accelerator.end_training()  # as `anymodal train` does: no process group left to the exit


if __name__ == "__main__":
    main()
