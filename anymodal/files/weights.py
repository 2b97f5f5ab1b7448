"""Reading weight files: torch checkpoints and safetensors, state dicts compared by key and shape,
and strict loading into a module with errors that name the file and the mismatched keys.

:func:`load_torch_file` and :func:`state_dict_mismatches` are public, so that plugins with
checkpoint formats of their own read and report them the way core does; torch is imported when a
file is read, never at import."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.contract.errors import ModelLoadError

if TYPE_CHECKING:
    import torch
    from torch import nn


def load_torch_file(
    file: Path,
    what: str = "weights file",
    hint: str = "the file may be truncated or corrupt; download it again",
) -> Any:
    """``torch.load(weights_only=True)`` onto the CPU, memory-mapped when the file allows it (the zip
    format of torch >= 1.6; a legacy file is read whole). A file torch cannot read is a
    ModelLoadError in one line naming ``what`` and the file, with ``hint``."""
    import torch

    try:
        try:
            return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = "not a torch checkpoint, or one holding objects other than tensors"
        raise ModelLoadError(f"cannot read {what} {file}: {reason}", hint=hint) from error
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ModelLoadError(
            f"cannot read {what} {file}: {type(error).__name__}: {first}", hint=hint
        ) from error


def state_dict_mismatches(expected: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
    """What keeps ``state`` from loading strictly into a module whose state dict is ``expected``:
    a few missing, unexpected and mis-shaped keys each, as phrases for one error line."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(key for key in set(expected) & set(state) if expected[key].shape != state[key].shape)
    problems = []
    if missing:
        problems.append(f"missing {_sample(missing)}")
    if unexpected:
        problems.append(f"unexpected {_sample(unexpected)}")
    if wrong:
        shapes = [f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}" for key in wrong]
        problems.append(f"wrong shape {_sample(shapes)}")
    return problems


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a torch checkpoint (read with weights_only)."""
    import torch

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


def _sample(items: list[str]) -> str:
    shown = ", ".join(items[:3])
    return f"{shown} (+{len(items) - 3} more)" if len(items) > 3 else shown
