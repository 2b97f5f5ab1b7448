"""Reading weight files into modules, with errors that name the file and the mismatched keys."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from anymodal.errors import ModelLoadError
from anymodal.state_dicts import load_torch_file, state_dict_mismatches


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
