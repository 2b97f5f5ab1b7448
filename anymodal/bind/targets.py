"""The frozen target modality's pooled embeddings of the pairs, computed once per run and kept in
``train.feature_cache`` when it is set, in the training feature cache's own layout
(:func:`~anymodal.train.features.entry_path`, a ``pooled`` entry): a run that binds again, or a
stage-1 training on the same images with a projector on pooled features, finds them there. A text
target is written to a file under the run's folder first, as its modality's loader reads files.
An entry that cannot be read is encoded again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from anymodal.config.load import LoadedConfig
from anymodal.contract.registry import Registry
from anymodal.files.atomic import atomic_file
from anymodal.runtime.model import input_key, prepare_input
from anymodal.train.features import encoder_identity, entry_path


class TargetCache:
    """``embeddings(targets)``: ``[N, dim]`` pooled embeddings of the ``target`` modality's files."""

    def __init__(
        self, loaded: LoadedConfig, registry: Registry, target: str, encoder: nn.Module, run_dir: Path
    ) -> None:
        model = loaded.config.model
        section = model.modalities[target]
        self.spec = registry.get("modality", target)
        self.options = section.preprocess
        self.max_mb = model.max_input_mb
        self.encoder = encoder
        cache = loaded.config.train.feature_cache
        self.directory = Path(cache) if cache else None
        self.identity = encoder_identity(section.encoder, encoder) if cache else ""
        self.text_dir = run_dir / "text-targets"
        self.encoded = self.reused = 0

    def describe(self) -> str:
        where = f"kept in {self.directory}" if self.directory else "not kept (train.feature_cache is not set)"
        return f"{self.encoded} encoded, {self.reused} from the cache, {where}"

    def embeddings(self, targets: list[Path | str], batch_size: int) -> torch.Tensor:
        files = [self._file(target) for target in targets]
        found: list[torch.Tensor | None] = [self._cached(file) for file in files]
        self.reused += sum(item is not None for item in found)
        todo = [i for i, item in enumerate(found) if item is None]
        parameter = next(self.encoder.parameters(), None)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            prepared = [prepare_input(self.spec, files[i], self.options, self.max_mb) for i in chunk]
            batch = torch.stack([item.tensor for item in prepared])
            if parameter is not None:
                batch = batch.to(parameter.device)
                batch = batch.to(parameter.dtype) if batch.is_floating_point() else batch
            with torch.no_grad():
                pooled = self.encoder(batch).pooled.float().cpu()
            for row, index in enumerate(chunk):
                found[index] = pooled[row]
                self._keep(files[index], pooled[row])
            self.encoded += len(chunk)
        return torch.stack([item for item in found if item is not None])

    def _file(self, target: Path | str) -> Path:
        if isinstance(target, Path):
            return target
        digest = hashlib.sha256(target.encode()).hexdigest()
        suffix = self.spec.file_kinds[0] if self.spec.file_kinds else ".txt"
        path = self.text_dir / f"{digest[:24]}{suffix}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as temporary:
                temporary.write_text(target, encoding="utf-8")
        return path

    def _entry(self, file: Path) -> Path | None:
        if self.directory is None:
            return None
        return entry_path(
            self.directory, self.identity, "pooled", input_key(self.spec.name, file, self.options)
        )

    def _cached(self, file: Path) -> torch.Tensor | None:
        entry = self._entry(file)
        if entry is None:
            return None
        try:
            pooled = load_file(str(entry)).get("pooled")
        except (FileNotFoundError, SafetensorError):
            return None
        return pooled.float() if pooled is not None and pooled.dim() == 1 else None

    def _keep(self, file: Path, pooled: torch.Tensor) -> None:
        entry = self._entry(file)
        if entry is None:
            return
        entry.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(entry) as temporary:
            save_file({"pooled": pooled.contiguous()}, str(temporary))
