"""Loading the official ImageBind checkpoint (a flat state dict), whole or trunk by trunk.

The file is memory-mapped, so loading one trunk of the 4.5 GiB ``imagebind_huge.pth`` reads only
that trunk's bytes; a model built on the meta device takes the mapped tensors without a copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from anymodal.contract.errors import ModelLoadError
from anymodal.encoders.imagebind.config import IMAGEBIND_HUGE, ImageBindConfig
from anymodal.encoders.imagebind.model import ImageBind
from anymodal.files.weights import read_state_dict, state_dict_mismatches

MODULE_DICTS = ("modality_preprocessors", "modality_trunks", "modality_heads", "modality_postprocessors")


def trunk_of(key: str) -> str | None:
    """The trunk a checkpoint key belongs to (``modality_trunks.audio.blocks...`` -> ``audio``)."""
    parts = key.split(".", 2)
    return parts[1] if len(parts) > 2 and parts[0] in MODULE_DICTS else None


def select_trunks(state: Mapping[str, torch.Tensor], trunks: Iterable[str]) -> dict[str, torch.Tensor]:
    """The entries of ``state`` that belong to ``trunks``; keys of no trunk are kept (and then refused
    as unexpected), so a file of the wrong kind is reported rather than silently emptied."""
    wanted = set(trunks)
    return {key: value for key, value in state.items() if trunk_of(key) in wanted or trunk_of(key) is None}


def load_imagebind_weights(model: ImageBind, path: str | Path) -> list[str]:
    """Load the tensors of ``model``'s trunks from the checkpoint at ``path``, strictly.

    Returns the loaded keys. A model on the meta device takes the checkpoint's tensors (and dtype)
    as they are; otherwise they are copied into its parameters. Raises :class:`ModelLoadError`
    naming the file and a few missing, unexpected and mis-shaped keys when the file does not fit.
    """
    state = select_trunks(read_state_dict(path), model.modalities)
    expected = model.state_dict()
    problems = state_dict_mismatches(expected, state)
    if problems:
        raise ModelLoadError(
            f"{path} does not fit ImageBind ({', '.join(model.modalities)}): {'; '.join(problems)}",
            hint="use the official imagebind_huge.pth with preset 'huge' and no config overrides, "
            "or a checkpoint saved from the same ImageBind configuration",
        )
    on_meta = any(tensor.is_meta for tensor in expected.values())
    model.load_state_dict(state, strict=True, assign=on_meta)
    return list(state)


def load_imagebind(
    path: str | Path,
    modalities: Iterable[str] | None = None,
    config: ImageBindConfig = IMAGEBIND_HUGE,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> ImageBind:
    """An :class:`ImageBind` with ``modalities`` (all six when None) loaded from ``path``, in eval mode.

    The model is built on the meta device (no memory, no random init) and takes the checkpoint's
    tensors; ``dtype`` None keeps the checkpoint's dtype.
    """
    with torch.device("meta"):
        model = ImageBind(config, modalities)
    load_imagebind_weights(model, path)
    return model.to(device=device, dtype=dtype).eval()
