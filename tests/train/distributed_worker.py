"""One process of the 2-process training test (tests/train/test_distributed.py), run under torchrun.

Trains the toy modality from a config and writes ``<result_dir>/rank<N>.json``: what accelerate
made of the launch, this process's logged losses, and digests of the trainable weights before and
after training. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

from anymodal.config import load_config
from anymodal.plugins import load_registry
from anymodal.testing import toy
from anymodal.train.trainer import Trainer


def digest(parameters: dict[str, torch.nn.Parameter]) -> str:
    """A hash of every trainable tensor's name, shape, dtype and exact bytes, in the trainer's order."""
    hasher = hashlib.sha256()
    for name, parameter in parameters.items():
        tensor = parameter.detach().to("cpu").contiguous()
        hasher.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
        hasher.update(tensor.numpy().tobytes())
    return hasher.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("result_dir")
    parser.add_argument("--resume", default=None, help="a checkpoint directory to resume from")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="a config override")
    args = parser.parse_args()

    registry = load_registry(plugins=[toy])
    loaded = load_config(args.config, args.overrides, registry=registry)
    trainer = Trainer(loaded, registry, resume=args.resume, log=lambda line: print(line, file=sys.stderr))
    accelerator = trainer.accelerator
    names = list(trainer.trainable)
    initial = digest(trainer.trainable)
    result = trainer.fit()
    report = {
        "rank": accelerator.process_index,
        "num_processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "step": result.step,
        "losses": result.losses,
        "eval_loss": result.eval_loss,
        "last_checkpoint": str(result.last_checkpoint),
        "trainable": names,
        "lora_parameters": sum("lora_" in name for name in names),
        "initial_digest": initial,
        "final_digest": digest(trainer.trainable),
    }
    out = Path(args.result_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{accelerator.process_index}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
