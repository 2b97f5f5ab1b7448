"""Encoder embeddings of files, without an LLM: what ``anymodal embed`` and ``similarity`` use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from anymodal.config.device import resolve_device, resolve_dtype
from anymodal.config.schema import AnymodalConfig, EncoderConfig, ModalityConfig
from anymodal.contract.registry import Registry
from anymodal.runtime.model import DTYPES, build_encoder, prepare_input


@dataclass(frozen=True)
class Embedding:
    """One file's pooled embedding ``[dim]`` (for ImageBind: post-processed, in the shared space)."""

    modality: str
    path: Path
    vector: torch.Tensor


def embed_files(
    files: Sequence[tuple[str, str | Path]],
    config: AnymodalConfig,
    registry: Registry,
    *,
    weights: str | None = None,
    batch_size: int = 8,
) -> list[Embedding]:
    """Embed ``(modality, path)`` pairs, in order. Each modality's encoder comes from
    ``model.modalities.<name>.encoder`` when the config has it, else the modality's default;
    ``weights`` (a checkpoint such as ImageBind's) replaces every encoder's weights."""
    model = config.model
    device = resolve_device(model.device)
    dtype = DTYPES[resolve_dtype(model.dtype, device)]
    prepared = []
    for modality, path in files:  # every file is checked before any encoder is built
        settings = model.modalities.get(modality, ModalityConfig())
        spec = registry.get("modality", modality)
        prepared.append(prepare_input(spec, path, settings.preprocess, model.max_input_mb))
    out: list[Embedding | None] = [None] * len(prepared)
    for modality in dict.fromkeys(item.modality for item in prepared):
        section = model.modalities.get(modality, ModalityConfig()).encoder
        if weights:
            section = EncoderConfig(section.name, weights, section.options)
        encoder = build_encoder(registry.modalities[modality], section, registry)
        encoder.to(device=device, dtype=dtype)
        indices = [i for i, item in enumerate(prepared) if item.modality == modality]
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = torch.stack([prepared[i].tensor for i in chunk]).to(device)
            batch = batch.to(dtype) if batch.is_floating_point() else batch
            with torch.no_grad():
                pooled = encoder(batch).pooled.float().cpu()
            for row, index in enumerate(chunk):
                out[index] = Embedding(modality, prepared[index].path, pooled[row])
        del encoder  # one encoder in memory at a time
    return [item for item in out if item is not None]


def cosine_matrix(queries: Sequence[Embedding], candidates: Sequence[Embedding]) -> torch.Tensor:
    """``[queries, candidates]`` cosine similarities."""
    left = torch.nn.functional.normalize(torch.stack([q.vector for q in queries]), dim=-1)
    right = torch.nn.functional.normalize(torch.stack([c.vector for c in candidates]), dim=-1)
    return left @ right.T
