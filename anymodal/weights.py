"""Reading weight files into modules, with errors that name the file and the mismatched keys."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymodal.errors import ModelLoadError
from anymodal.state_dicts import state_dict_mismatches


def load_torch_file(file: Path, what: str = "weights file") -> Any:
    """``torch.load(weights_only=True)`` onto the CPU, memory-mapped when the file allows it (the zip
    format of torch >= 1.6; a legacy file is read whole). A file torch cannot read is a
    ModelLoadError in one line, naming ``what`` and the file."""
    try:
        try:
            return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = "not a torch checkpoint, or one holding objects other than tensors"
        raise ModelLoadError(
            f"cannot read {what} {file}: {reason}", hint="it should be written by torch.save of tensors"
        ) from error
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ModelLoadError(
            f"cannot read {what} {file}: {type(error).__name__}: {first}",
            hint="the file may be truncated or corrupt; download it again",
        ) from error


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a torch checkpoint (read with weights_only)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelLoadError(f"weights file not found: {file}", hint="check the path in the config")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except Exception as error:
            raise ModelLoadError(f"cannot read weights file {file}: {error}") from error
    loaded = load_torch_file(file)
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelLoadError(f"{file} is not a flat state dict of tensors")
    return loaded


def load_weights(module: nn.Module, path: str | Path, what: str) -> None:
    """Load ``path`` into ``module`` strictly; missing, unexpected or mis-shaped keys are listed."""
    state = read_state_dict(path)
    problems = state_dict_mismatches(module.state_dict(), state)
    if problems:
        raise ModelLoadError(
            f"{path} does not fit the {what}: {'; '.join(problems)}",
            hint="check that the file was trained for this encoder, projector and LLM size",
        )
    module.load_state_dict(state, strict=True)
