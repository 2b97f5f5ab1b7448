"""A toy modality plugin for tests: ``.npy`` arrays of shape ``[rows, input_dim]``.

It exercises the whole contract (loader, preprocessor, encoder, projector defaults) with tensors
small enough for any test, and is registered without entry points by passing this module to
``anymodal.contract.registry.load_registry(plugins=[toy])``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anymodal

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION


@dataclasses.dataclass
class ToyEncoderOptions:
    input_dim: int = 8
    dim: int = 16
    tokens: int = 4
    seed: int = 0


def load_npy(path: Path) -> Any:
    """Decode a ``.npy`` file; a corrupt file or wrong shape raises InputError naming the file."""
    import numpy as np

    array = anymodal.load_npy(path, modality="toy")
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise anymodal.InputError(
            f"toy file must hold a 2-D numeric array, got shape {array.shape} ({array.dtype}): {path}"
        )
    return array


def preprocess(array: Any, tokens: int = 4) -> Any:
    """``[rows, input_dim]`` array -> float32 tensor ``[tokens, input_dim]`` (trimmed or zero-padded)."""
    import torch

    tensor = torch.as_tensor(array, dtype=torch.float32)[:tokens]
    padding = tokens - tensor.shape[0]
    return torch.nn.functional.pad(tensor, (0, 0, 0, padding)) if padding else tensor


def build_encoder(modality: str, options: ToyEncoderOptions | None) -> Any:
    from anymodal.testing.toy_encoder import ToyEncoder

    return ToyEncoder(**dataclasses.asdict(options or ToyEncoderOptions()))


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="toy",
            loader=load_npy,
            preprocess=preprocess,
            file_kinds=("npy",),
            default_encoder="toy-encoder",
            default_projector="linear",
            description="test modality: 2-D .npy arrays",
        )
    )
    # A second modality on the same files, so tests can mix modalities in one batch or rank one
    # against another; its name also exercises the underscore -> dash flag (--toy-alt).
    register(
        anymodal.ModalitySpec(
            name="toy_alt",
            loader=load_npy,
            preprocess=preprocess,
            file_kinds=("npy",),
            default_encoder="toy-encoder",
            default_projector="mlp",
            description="second test modality: 2-D .npy arrays",
        )
    )


@anymodal.hookimpl
def register_encoders(register: Callable[..., None]) -> None:
    register(anymodal.EncoderSpec(name="toy-encoder", build=build_encoder, options=ToyEncoderOptions))
