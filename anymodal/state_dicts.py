"""Reading torch checkpoint files and comparing state dicts by key and shape. Public, so that plugins
with checkpoint formats of their own read and report them the way core does; torch is imported
when a file is read, never at import."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anymodal.errors import ModelLoadError


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


def _sample(items: list[str]) -> str:
    shown = ", ".join(items[:3])
    return f"{shown} (+{len(items) - 3} more)" if len(items) > 3 else shown
