"""A disk cache of frozen encoders' outputs, so an input is encoded once across epochs and runs.

An entry is keyed by the input (modality, file content, preprocessing options; see
:func:`anymodal.runtime.input_key`) and by the encoder's identity: its registered name, options,
dtype and weights (the weights file's path, size and modification time, or a digest of the
parameters when the encoder has no weights file). Change any of them and the old entries are
simply not found. Entries are safetensors files written to a temporary name and renamed, so a run
killed mid-write never leaves a half-written entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from anymodal.config.schema import EncoderConfig
from anymodal.contract.errors import InputError
from anymodal.contract.specs import EncoderOutput
from anymodal.files.atomic import atomic_file
from anymodal.runtime.model import AnyModalModel, input_key
from anymodal.train.data import MediaRef


def encoder_identity(config: EncoderConfig, encoder: nn.Module) -> str:
    """A digest that changes whenever the encoder would compute different features."""
    options = config.options
    plain = (
        asdict(options) if is_dataclass(options) and not isinstance(options, type) else dict(options or {})
    )
    described: dict[str, Any] = {"name": config.name, "options": plain, "dtype": str(_dtype(encoder))}
    if config.weights:
        weights = Path(config.weights)
        stat = weights.stat()
        described["weights"] = [str(weights.resolve()), stat.st_size, stat.st_mtime_ns]
    else:
        described["parameters"] = _state_digest(encoder)
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


class FeatureCache:
    """Encoder outputs on disk under ``directory/<encoder identity>/``, one file per input."""

    def __init__(self, directory: Path, model: AnyModalModel) -> None:
        self.directory = Path(directory)
        self.model = model
        self.identities = {
            name: encoder_identity(model.config.modalities[name].encoder, model.encoders[name])
            for name in model.specs
        }
        self._keys: dict[tuple[str, Path], str] = {}

    def key(self, ref: MediaRef) -> str:
        """The input's content key; the file is hashed once per run."""
        cached = self._keys.get((ref.modality, ref.path))
        if cached is None:
            options = self.model.config.modalities[ref.modality].preprocess
            cached = self._keys[(ref.modality, ref.path)] = input_key(ref.modality, ref.path, options)
        return cached

    def path(self, ref: MediaRef) -> Path:
        digest = hashlib.sha256(self.key(ref).encode()).hexdigest()
        return self.directory / self.identities[ref.modality][:24] / digest[:2] / f"{digest}.safetensors"

    def load(self, ref: MediaRef) -> EncoderOutput:
        """The cached output of one input (``features [tokens, dim]``, ``pooled [dim]``)."""
        file = self.path(ref)
        try:
            tensors = load_file(str(file))
        except FileNotFoundError:
            raise InputError(
                f"no cached features for {ref.modality} file {ref.path} in {self.directory}",
                hint="the cache is filled before training starts; was it cleared during the run?",
            ) from None
        return EncoderOutput(tensors["features"], tensors["pooled"])

    def missing(self, refs: Iterable[MediaRef]) -> list[MediaRef]:
        """The distinct inputs among ``refs`` that have no entry yet."""
        unique = {(ref.modality, ref.path): ref for ref in refs}
        return [ref for ref in unique.values() if not self.path(ref).is_file()]

    def fill(
        self, refs: Sequence[MediaRef], batch_size: int, progress: Callable[[int], None] | None = None
    ) -> int:
        """Encode every input of ``refs`` not cached yet, ``batch_size`` at a time; returns how many."""
        todo = self.missing(refs)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            prepared = [self.model.prepare(ref.modality, ref.path) for ref in chunk]
            for ref, output in zip(chunk, self.model.encode_features(prepared), strict=True):
                self._write(self.path(ref), output)
            if progress is not None:
                progress(len(chunk))
        return len(todo)

    def _write(self, file: Path, output: EncoderOutput) -> None:
        tensors = {"features": output.features.contiguous().cpu(), "pooled": output.pooled.contiguous().cpu()}
        with atomic_file(file) as temporary:
            save_file(tensors, str(temporary))


def _dtype(module: nn.Module) -> torch.dtype | None:
    parameter = next(module.parameters(), None)
    return parameter.dtype if parameter is not None else None


def _state_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
