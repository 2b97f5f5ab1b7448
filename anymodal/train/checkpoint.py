"""Checkpoints: usable on their own, resumable exactly, never half-written.

Layout of ``<output_dir>/checkpoint-<step>/``::

    anymodal.yaml              the resolved config, pointing at the files below (chat with
                               `anymodal chat --model <this directory>`)
    projectors/<modality>.safetensors
    adapter/                   stage 2: the LoRA adapter in PEFT format, and the tokenizer
    versions.json              anymodal, torch, transformers, peft, accelerate and plugin versions
    state/                     accelerate's state: optimizer, RNG per process, the trainer's
                               position (step, epoch, batches seen, scheduler)

Everything is written into ``.tmp-checkpoint-<step>`` and renamed into place once complete; then
``latest`` (a text file naming the newest checkpoint) is replaced atomically. A run killed
part-way leaves the previous checkpoint and ``latest`` intact.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from anymodal.config.load import LoadedConfig
from anymodal.config.sources import CHECKPOINT_CONFIG, LATEST_CHECKPOINT, latest_checkpoint
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import Registry

LATEST = LATEST_CHECKPOINT
PREFIX = "checkpoint-"
STATE_DIR = "state"
PROJECTORS_DIR = "projectors"
ADAPTER_DIR = "adapter"
LIBRARIES = ("anymodal", "torch", "transformers", "peft", "accelerate", "safetensors")


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:07d}"


def write_model_files(
    directory: Path,
    loaded: LoadedConfig,
    projectors: Mapping[str, Mapping[str, torch.Tensor]],
    adapter_saved: bool,
    registry: Registry,
) -> None:
    """The files that make ``directory`` a model: projector weights, config, versions."""
    (directory / PROJECTORS_DIR).mkdir(parents=True, exist_ok=True)
    for modality, tensors in projectors.items():
        cpu = {key: value.detach().to("cpu").contiguous() for key, value in tensors.items()}
        save_file(cpu, str(directory / PROJECTORS_DIR / f"{modality}.safetensors"))
    data = loaded.to_dict()
    for modality in projectors:
        data["model"]["modalities"][modality]["projector"]["weights"] = (
            f"./{PROJECTORS_DIR}/{modality}.safetensors"
        )
    if adapter_saved:
        data["model"]["llm"]["adapter"] = f"./{ADAPTER_DIR}"
    header = f"# anymodal checkpoint trained from {loaded.source}\n"
    if loaded.overrides:
        header += f"# overrides: {' '.join(loaded.overrides)}\n"
    (directory / CHECKPOINT_CONFIG).write_text(header + OmegaConf.to_yaml(OmegaConf.create(data)))
    (directory / "versions.json").write_text(json.dumps(versions(registry), indent=2) + "\n")


def versions(registry: Registry) -> dict[str, Any]:
    """The versions a checkpoint was written with, so a result can be reproduced."""
    libraries: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    plugins = [record.as_dict() for record in registry.plugins]
    return {"python": platform.python_version(), "libraries": libraries, "plugins": plugins}


def publish(temporary: Path, output_dir: Path, step: int, keep: int) -> Path:
    """Rename a finished ``temporary`` directory to its checkpoint name, point ``latest`` at it and
    delete all but the newest ``keep`` checkpoints (0 keeps all)."""
    final = output_dir / checkpoint_name(step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    pointer = output_dir / f".{LATEST}.tmp"
    pointer.write_text(final.name + "\n")
    os.replace(pointer, output_dir / LATEST)
    if keep:
        for old in sorted(output_dir.glob(f"{PREFIX}*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(resume: str, output_dir: Path) -> Path:
    """The checkpoint ``--resume`` means: "latest" (in ``output_dir``) or a checkpoint directory."""
    if resume == LATEST:
        pointer = output_dir / LATEST
        if not pointer.is_file():
            raise UsageError(
                f"nothing to resume: {output_dir} has no checkpoint yet",
                hint="run without --resume to start training, or pass --resume DIR",
            )
        directory = output_dir / pointer.read_text().strip()
    else:
        directory = latest_checkpoint(Path(resume).expanduser().absolute())
    if not (directory / STATE_DIR).is_dir() or not (directory / CHECKPOINT_CONFIG).is_file():
        raise UsageError(
            f"{directory} is not a complete anymodal training checkpoint (it needs {CHECKPOINT_CONFIG} and "
            f"{STATE_DIR}/)",
            hint=f"pass a {PREFIX}* directory written by `anymodal train`",
        )
    return directory


def weights_from(directory: Path, modalities: list[str]) -> tuple[dict[str, str], str | None]:
    """The projector files (by modality) and adapter directory a checkpoint (or the newest one of a
    run's output directory) holds for ``modalities``."""
    directory = latest_checkpoint(directory)
    if not (directory / PROJECTORS_DIR).is_dir():
        raise UsageError(
            f"train.init_from: {directory} is not an anymodal checkpoint (it has no {PROJECTORS_DIR}/)",
            hint=f"point it at a {PREFIX}* directory or a run's output directory",
        )
    projectors = {
        name: str(directory / PROJECTORS_DIR / f"{name}.safetensors")
        for name in modalities
        if (directory / PROJECTORS_DIR / f"{name}.safetensors").is_file()
    }
    adapter = directory / ADAPTER_DIR
    return projectors, str(adapter) if (adapter / "adapter_config.json").is_file() else None
