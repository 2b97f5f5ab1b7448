"""A disk cache of frozen encoders' outputs, so an input is encoded once across epochs and runs.

An entry holds what the modality's projector reads, no more: the projector's ``reads`` attribute
names the parts of the :class:`~anymodal.EncoderOutput` its forward uses (``("pooled",)`` for
``linear`` and ``mlp`` on the pooled vector, ``("features",)`` for ``mlp`` on tokens and
``resampler``); a projector that does not say gets both. A loaded entry has the parts it does not
hold as empty tensors, so a projector that reads one after all fails on its shape rather than
training on something else.

An entry is keyed by the input (modality, file content, preprocessing options; see
:func:`anymodal.runtime.input_key`), by the encoder's identity (its registered name, options,
dtype and weights: the weights file's path, size and modification time, or a digest of the
parameters when the encoder has no weights file) and by the parts it holds:
``<directory>/<identity>/<parts>/<xx>/<digest>.safetensors``, ``<parts>`` being ``pooled``,
``features`` or ``features+pooled``. Change any of them and the old entries are simply not found.

A missing entry is cut from an entry of the same input and encoder that holds more, when there is
one, without encoding: a ``features+pooled`` entry, or an entry of the layout before the parts
were part of the key (``<directory>/<identity>/<xx>/<digest>.safetensors``, every one holding both
parts). Otherwise the input is encoded. Entries are safetensors files written to a temporary name
and renamed, so a run killed mid-write never leaves a half-written entry that a later run would
trust.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from anymodal.config.schema import EncoderConfig
from anymodal.contract.errors import InputError, PluginError
from anymodal.contract.specs import EncoderGeometry, EncoderOutput
from anymodal.files.atomic import atomic_file
from anymodal.runtime.given import PARTS
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


def projector_reads(projector: nn.Module, modality: str) -> tuple[str, ...]:
    """The parts of its encoder's output that ``projector`` reads, in :data:`PARTS` order, as its
    ``reads`` attribute declares them; every part when it declares nothing."""
    declared = getattr(projector, "reads", None)
    if declared is None:
        return PARTS
    if not isinstance(declared, (tuple, list)) or not declared or not set(declared) <= set(PARTS):
        raise PluginError(
            f"the {modality} projector declares reads={declared!r}; it must be a tuple naming "
            f"{' and/or '.join(map(repr, PARTS))}, the parts of the encoder output its forward reads"
        )
    return tuple(part for part in PARTS if part in declared)


def entry_path(directory: Path, identity: str, parts: str | None, key: str) -> Path:
    """Where the entry of the input ``key`` (:func:`~anymodal.runtime.model.input_key`) encoded by
    the encoder ``identity`` (:func:`encoder_identity`) and holding ``parts`` lies under
    ``directory``: ``<identity>/<parts>/<digest[:2]>/<digest>.safetensors``."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    folder = directory / identity[:24]
    return (folder / parts if parts else folder) / digest[:2] / f"{digest}.safetensors"


class FeatureCache:
    """Encoder outputs on disk under ``directory/<encoder identity>/<parts>/``, one file per input."""

    def __init__(self, directory: Path, model: AnyModalModel) -> None:
        self.directory = Path(directory)
        self.model = model
        self.identities = {
            name: encoder_identity(model.config.modalities[name].encoder, model.encoders[name])
            for name in model.specs
        }
        #: What each modality's entries hold: the parts of the encoder output its projector reads.
        self.parts = {name: projector_reads(model.projectors[name], name) for name in model.specs}
        self._geometries: dict[str, EncoderGeometry] = {
            name: getattr(model.encoders[name], "geometry")  # noqa: B009 - part of the contract
            for name in model.specs
        }
        self._keys: dict[tuple[str, Path], str] = {}

    def describe(self) -> str:
        """What the entries hold, by modality: ``"image: pooled, audio: features"``."""
        return ", ".join(f"{name}: {'+'.join(parts)}" for name, parts in self.parts.items())

    def key(self, ref: MediaRef) -> str:
        """The input's content key; the file is hashed once per run."""
        cached = self._keys.get((ref.modality, ref.path))
        if cached is None:
            options = self.model.config.modalities[ref.modality].preprocess
            cached = self._keys[(ref.modality, ref.path)] = input_key(ref.modality, ref.path, options)
        return cached

    def path(self, ref: MediaRef) -> Path:
        """The file of the input's entry, which holds what its projector reads."""
        return self._file(ref, "+".join(self.parts[ref.modality]))

    def load(self, ref: MediaRef) -> EncoderOutput:
        """The cached output of one input: the parts the projector reads (``features [tokens, dim]``,
        ``pooled [dim]``), the others empty."""
        file = self.path(ref)
        entry = f"feature cache entry {file} (of {ref.modality} file {ref.path})"
        again = "delete it; the next run encodes the input again"
        try:
            tensors = load_file(str(file))
        except FileNotFoundError:
            raise InputError(
                f"no cached features for {ref.modality} file {ref.path} in {self.directory}",
                hint="the cache is filled before training starts; was it cleared during the run?",
            ) from None
        except SafetensorError as error:
            raise InputError(f"{entry} cannot be read: {error}", hint=again) from error
        problem = self._problem(ref.modality, tensors)
        if problem is not None:
            raise InputError(f"{entry} {problem}", hint=again)
        absent = torch.empty(0)
        return EncoderOutput(tensors.get("features", absent), tensors.get("pooled", absent))

    def missing(self, refs: Iterable[MediaRef]) -> list[MediaRef]:
        """The distinct inputs among ``refs`` that have no entry yet."""
        unique = {(ref.modality, ref.path): ref for ref in refs}
        return [ref for ref in unique.values() if not self.path(ref).is_file()]

    def fill(
        self, refs: Sequence[MediaRef], batch_size: int, progress: Callable[[int], None] | None = None
    ) -> int:
        """Make an entry for every input of ``refs`` that has none: cut from an entry that holds more
        when there is one, else by encoding, ``batch_size`` inputs at a time. ``progress(n)`` is told
        of every ``n`` entries made. Returns how many inputs were encoded."""
        missing = self.missing(refs)
        todo = [ref for ref in missing if not self._cut_from_larger(ref)]
        if progress is not None and len(todo) < len(missing):
            progress(len(missing) - len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            prepared = [self.model.prepare(ref.modality, ref.path) for ref in chunk]
            for ref, output in zip(chunk, self.model.encode_features(prepared), strict=True):
                self._write(ref, output._asdict())
            if progress is not None:
                progress(len(chunk))
        return len(todo)

    def _file(self, ref: MediaRef, parts: str | None) -> Path:
        """The entry of ``ref`` holding ``parts`` ("pooled", "features+pooled" ...); None: the layout
        before the parts were part of the key."""
        return entry_path(self.directory, self.identities[ref.modality], parts, self.key(ref))

    def _cut_from_larger(self, ref: MediaRef) -> bool:
        """Write the input's entry from one of the same input and encoder holding every part (this
        layout's ``features+pooled``, or the older layout); False when there is none to read."""
        sources = [self._file(ref, None)]
        if self.parts[ref.modality] != PARTS:
            sources.insert(0, self._file(ref, "+".join(PARTS)))
        for source in sources:
            try:
                tensors = load_file(str(source))
            except (FileNotFoundError, SafetensorError):
                continue  # none there, or a broken one: the input is encoded again
            if self._problem(ref.modality, tensors) is None:
                self._write(ref, tensors)
                return True
        return False

    def _problem(self, modality: str, tensors: Mapping[str, torch.Tensor]) -> str | None:
        """What keeps ``tensors`` from being the entry of a ``modality`` input, or None."""
        geometry = self._geometries[modality]
        wanted = {"features": (2, geometry.feature_dim), "pooled": (1, geometry.pooled_dim)}
        for part in self.parts[modality]:
            if part not in tensors:
                held = " and ".join(sorted(tensors)) or "nothing"
                return f"holds {held} but no {part}, which the {modality} projector reads"
            ndim, dim = wanted[part]
            shape = list(tensors[part].shape)
            if len(shape) != ndim or shape[-1] != dim:
                return (
                    f"holds {part} of shape {shape}, where the {modality} encoder's is {ndim}-D with "
                    f"last dimension {dim}"
                )
        return None

    def _write(self, ref: MediaRef, tensors: Mapping[str, torch.Tensor]) -> None:
        """Write the parts of ``tensors`` that the input's entry holds."""
        kept = {part: tensors[part].contiguous().cpu() for part in self.parts[ref.modality]}
        with atomic_file(self.path(ref)) as temporary:
            save_file(kept, str(temporary))


def _dtype(module: nn.Module) -> torch.dtype | None:
    parameter = next(module.parameters(), None)
    return parameter.dtype if parameter is not None else None


def _state_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
