"""Inputs given as encoder outputs instead of files: for users who cache what an encoder computed
(the trainer's feature cache, ImageBind embeddings made elsewhere) and for comparisons that feed
two implementations the very same vectors.

An embedding is what the modality's encoder would have returned for one input, without a batch
dimension: ``pooled [pooled_dim]`` and/or ``features [tokens, feature_dim]`` (see
:class:`anymodal.EncoderOutput`), checked against the encoder's geometry. A part that is not given
is filled with NaN; if the modality's projector reads it, the input is refused with an error that
says which part is missing, before it reaches a prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymodal.contract.errors import InputError, ModelLoadError
from anymodal.contract.specs import EncoderGeometry, EncoderOutput
from anymodal.files.weights import load_torch_file

#: Files an embedding is read from: a torch file (weights only) or safetensors.
EMBEDDING_FILE_KINDS = (".pt", ".pth", ".safetensors")
PARTS = ("features", "pooled")


def read_embedding_file(path: Path, modality: str) -> Any:
    """The tensor, or mapping of ``features`` / ``pooled`` tensors, stored in ``path``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:
            raise InputError(f"{modality} embedding file cannot be read: {path} ({error})") from error
    try:
        return load_torch_file(path, what=f"{modality} embedding file")
    except ModelLoadError as error:
        raise InputError(error.message, hint=error.hint) from error


def embedding_output(
    embedding: Any, geometry: EncoderGeometry, modality: str, source: str
) -> tuple[EncoderOutput, tuple[str, ...]]:
    """``embedding`` (a tensor, an EncoderOutput, or a mapping of ``features`` / ``pooled``) as an
    unbatched EncoderOutput of ``geometry``'s shapes, and the parts that were given. A 1-D tensor
    is the pooled vector, a 2-D one the features."""
    parts = _parts(embedding, modality, source)
    expected = {"features": (geometry.num_tokens, geometry.feature_dim), "pooled": (geometry.pooled_dim,)}
    filled = {}
    for name, shape in expected.items():
        tensor = parts.get(name)
        if tensor is None:
            filled[name] = torch.full(shape, float("nan"))
            continue
        if tuple(tensor.shape) != shape:
            raise InputError(
                f"{modality} embedding {source}: {name} has shape {list(tensor.shape)}, the {modality} "
                f"encoder's is {list(shape)}",
                hint="give what this model's encoder returns for one input, without a batch dimension",
            )
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise InputError(f"{modality} embedding {source}: {name} must hold finite floating-point values")
        filled[name] = tensor.detach().float()
    return EncoderOutput(filled["features"], filled["pooled"]), tuple(name for name in PARTS if name in parts)


def check_projector_reads_only(
    projector: nn.Module, output: EncoderOutput, given: tuple[str, ...], modality: str, source: str
) -> None:
    """Refuse the embedding when the projector reads a part it lacks (the NaN it was filled with
    reaches the projection)."""
    param = next(projector.parameters())
    batch = EncoderOutput(
        output.features.unsqueeze(0).to(param.device, param.dtype),
        output.pooled.unsqueeze(0).to(param.device, param.dtype),
    )
    with torch.no_grad():
        projected = projector(batch)
    if not torch.isfinite(projected).all():
        missing = " and ".join(name for name in PARTS if name not in given)
        raise InputError(
            f"{modality} embedding {source} has no {missing}, which the {modality} projector reads",
            hint=f"give the encoder's {missing} too (a mapping with keys {', '.join(PARTS)})",
        )


def embedding_key(modality: str, output: EncoderOutput) -> str:
    """What identifies an embedding input: its modality and the bytes of both parts."""
    digest = hashlib.sha256()
    for tensor in output:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return f"{modality}:embedding:{digest.hexdigest()}"


def _parts(embedding: Any, modality: str, source: str) -> dict[str, torch.Tensor]:
    if isinstance(embedding, EncoderOutput):
        return {"features": embedding.features, "pooled": embedding.pooled}
    if isinstance(embedding, torch.Tensor):
        if embedding.ndim not in (1, 2):
            raise InputError(
                f"{modality} embedding {source} is a tensor of shape {list(embedding.shape)}",
                hint="give the pooled vector [dim] or the features [tokens, dim] of one input",
            )
        return {"pooled" if embedding.ndim == 1 else "features": embedding}
    if isinstance(embedding, Mapping):
        unknown = sorted(str(key) for key in embedding if key not in PARTS)
        tensors = {key: value for key, value in embedding.items() if key in PARTS}
        if unknown or not tensors or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
            raise InputError(
                f"{modality} embedding {source} holds {', '.join(map(str, embedding)) or 'nothing'}",
                hint=f"store a tensor, or a mapping of {' and/or '.join(PARTS)} to tensors",
            )
        return dict(tensors)
    raise InputError(
        f"{modality} embedding {source} is a {type(embedding).__name__}, not a tensor",
        hint=f"store a tensor, or a mapping of {' and/or '.join(PARTS)} to tensors",
    )
