"""One ``anymodal bind`` run, on the shared loop (:mod:`anymodal.train.loop`): accelerate, exact
resume, metrics, atomic checkpoints.

No LLM is loaded: the run builds two encoders from ``model.modalities``, the bound modality's
(``bind.modality``; its parameters named by ``bind.trainable``, or all of them, train) and the
target's (``bind.target``, frozen). The target's pooled embedding of every pair is computed once,
before training, and kept in ``train.feature_cache`` when set (:class:`~anymodal.bind.targets.TargetCache`).
Each step runs the bound encoder on a batch of its files and the InfoNCE of its pooled outputs
against the batch's targets (:mod:`anymodal.bind.objective`). The held-out pairs give cross-modal
retrieval recall@k, at every ``train.eval_every`` and at the end.

A checkpoint is a model directory: ``encoders/<modality>.safetensors`` (the trained encoder's state
dict, in its own checkpoint layout when it has one, ``checkpoint_state``: ImageBind's flat keys;
what the encoder's loader reads back) and ``anymodal.yaml``, the config with the encoder's
``weights`` pointing there and its projector the target's (``projector: {from: <target>}``), so
``anymodal chat``, ``serve`` and ``embed`` use the bound encoder at once, and the LLM reads it
through the projector trained for the target (zero-shot); ``retrieval.json`` holds the held-out
figures of the last evaluation.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from anymodal.bind.data import Pair, read_pairs, split
from anymodal.bind.objective import InfoNCE, TargetQueue, recall_at
from anymodal.bind.targets import TargetCache
from anymodal.config.load import LoadedConfig
from anymodal.config.schema import EncoderConfig
from anymodal.config.sources import CHECKPOINT_CONFIG
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import Registry
from anymodal.runtime.model import build_encoder, prepare_input
from anymodal.train import checkpoint
from anymodal.train.batches import EpochSampler
from anymodal.train.engine import make_accelerator
from anymodal.train.loop import Loop, RunResult

ENCODERS_DIR = "encoders"
RETRIEVAL_FILE = "retrieval.json"


@dataclass
class BindBatch:
    """A batch of pairs: the bound modality's preprocessed inputs, and the targets' embeddings."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def to(self, device: torch.device | str) -> BindBatch:
        return BindBatch(self.inputs.to(device), self.targets.to(device))


class PairDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Pair ``i``: the bound file preprocessed, and its target's embedding."""

    def __init__(self, pairs: Sequence[Pair], prepare: Callable[[Path], torch.Tensor], targets: torch.Tensor):
        self.pairs, self.prepare, self.targets = pairs, prepare, targets

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.prepare(self.pairs[index].source), self.targets[index]


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> BindBatch:
    return BindBatch(torch.stack([i for i, _ in items]), torch.stack([t for _, t in items]))


class BindingModel(nn.Module):
    """What accelerate wraps: the bound encoder and the objective; ``forward(batch) -> loss``."""

    def __init__(self, encoder: nn.Module, objective: InfoNCE, queue: TargetQueue) -> None:
        super().__init__()
        self.encoder, self.objective, self.queue = encoder, objective, queue

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        parameter = next(self.encoder.parameters())
        inputs = inputs.to(parameter.dtype) if inputs.is_floating_point() else inputs
        pooled: torch.Tensor = self.encoder(inputs).pooled
        return pooled

    def forward(self, batch: BindBatch) -> torch.Tensor:
        bound = self.embed(batch.inputs)
        queued = self.queue.items.to(bound.device) if self.training and self.queue.items is not None else None
        loss: torch.Tensor = self.objective(bound, batch.targets, queued)
        if self.training:
            self.queue.push(batch.targets)
        return loss


class Binder(Loop):
    """One bind run; :meth:`~anymodal.train.loop.Loop.fit` trains."""

    def __init__(
        self,
        loaded: LoadedConfig,
        registry: Registry,
        *,
        resume: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.loaded, self.registry, self.log = loaded, registry, log
        config = loaded.config
        self.bind, self.train_config = config.bind, config.train
        self.modality, self.target = _modalities(loaded)
        if not config.bind.data:
            raise UsageError(
                "bind.data is not set", hint="set it to a JSON Lines file of pairs: bind.data=pairs.jsonl"
            )
        pairs = read_pairs(config.bind.data, self.modality, self.target)  # before any encoder: fail fast
        self.train_pairs, self.eval_pairs = split(pairs, config.bind.eval_fraction, config.train.seed)
        self.output_dir = Path(config.train.output_dir)
        self.resume_from = checkpoint.find_checkpoint(resume, self.output_dir) if resume else None
        self.accelerator = make_accelerator(config.train, config.model.device)
        random.seed(config.train.seed)
        torch.manual_seed(config.train.seed)
        sections = config.model.modalities
        self.spec = registry.get("modality", self.modality)
        start = sections[self.modality].encoder
        if self.resume_from is not None:  # the encoder as the checkpoint left it
            weights = self.resume_from / ENCODERS_DIR / f"{self.modality}.safetensors"
            start = EncoderConfig(start.name, str(weights), start.options)
        self.encoder = build_encoder(self.spec, start, registry)
        self.trained = _select_trainable(self.encoder, config.bind.trainable, self.modality)
        self.target_encoder = build_encoder(
            registry.get("modality", self.target), sections[self.target].encoder, registry
        )
        self.objective = InfoNCE(config.bind.logit_scale, config.bind.learn_logit_scale)
        self.queue = TargetQueue(config.bind.queue_size)
        # Checkpointed with the loop's state (the encoder's weights are a file of their own): a
        # learned logit scale and the queue are where the run left them when it resumes.
        self.accelerator.register_for_checkpointing(self.objective)
        self.accelerator.register_for_checkpointing(self.queue)
        self.targets: dict[str, torch.Tensor] = {}
        #: The held-out figures of the last evaluation, written with the next checkpoint.
        self.evaluation: dict[str, float] | None = None

    # --- reporting --------------------------------------------------------------------------

    def describe(self) -> str:
        trainable = sum(p.numel() for p in self.trained)
        total = sum(p.numel() for p in self.encoder.parameters())
        return (
            f"binding the {self.modality} encoder to {self.target} embeddings: "
            f"{len(self.train_pairs)} pairs, {len(self.eval_pairs)} held out; "
            f"trainable parameters {trainable:,} of {total:,}"
        )

    # --- the loop's parts -------------------------------------------------------------------

    def before_fit(self) -> None:
        self.log(self.describe())
        cache = TargetCache(self.loaded, self.registry, self.target, self.target_encoder, self.output_dir)
        for name, pairs in (("train", self.train_pairs), ("eval", self.eval_pairs)):
            self.targets[name] = cache.embeddings(
                [pair.target for pair in pairs], self.train_config.batch_size
            )
        self.log(f"target embeddings: {cache.describe()}")

    def loaders(self) -> tuple[DataLoader[Any], DataLoader[Any] | None]:
        train = self._loader(self.train_pairs, self.targets["train"], shuffle=True)
        held = self._loader(self.eval_pairs, self.targets["eval"], shuffle=False) if self.eval_pairs else None
        return train, held

    def wrapped_model(self) -> nn.Module:
        return BindingModel(self.encoder, self.objective, self.queue)

    def trainable_parameters(self) -> list[nn.Parameter]:
        extra = [p for p in self.objective.parameters() if p.requires_grad]
        return [*self.trained, *extra]

    def set_train_mode(self) -> None:
        self.encoder.train()

    def evaluate(self, wrapped: nn.Module, loader: Any) -> dict[str, float]:
        """Recall@k of the held-out pairs against one another, both ways, and their InfoNCE loss."""
        model = self.accelerator.unwrap_model(wrapped)
        bound, targets = [], []
        for batch in loader:
            batch = batch.to(self.accelerator.device)
            bound.append(self.accelerator.gather_for_metrics(model.embed(batch.inputs)))
            targets.append(self.accelerator.gather_for_metrics(batch.targets))
        left, right = torch.cat(bound), torch.cat(targets)
        figures = recall_at(left, right, tuple(self.bind.recall_at))
        figures["loss"] = float(self.objective(left, right))
        figures["pairs"] = float(len(left))
        self.evaluation = figures
        return figures

    def write_files(self, temporary: Path, wrapped: nn.Module) -> None:
        state = self.accelerator.get_state_dict(wrapped)
        encoder = {
            key[len("encoder.") :]: value for key, value in state.items() if key.startswith("encoder.")
        }
        # An encoder whose weights file has its own layout (ImageBind's) says how to write it.
        layout = getattr(self.encoder, "checkpoint_state", None)
        if callable(layout):
            encoder = layout(encoder)
        if not self.accelerator.is_main_process:
            return
        folder = temporary / ENCODERS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in encoder.items()},
            str(folder / f"{self.modality}.safetensors"),
        )
        data = self.loaded.to_dict()
        section = data["model"]["modalities"][self.modality]
        section["encoder"]["weights"] = f"./{ENCODERS_DIR}/{self.modality}.safetensors"
        # Its embeddings are now the target's kind: its inputs go through the target's projector,
        # at the length of the target's own (the objective trains directions only).
        norm = float(self.targets["train"].norm(dim=-1).mean()) if "train" in self.targets else None
        section["projector"] = {"from": self.target, "norm": norm}
        header = f"# anymodal bind of {self.modality} to {self.target}, from {self.loaded.source}\n"
        (temporary / CHECKPOINT_CONFIG).write_text(header + OmegaConf.to_yaml(OmegaConf.create(data)))
        (temporary / "versions.json").write_text(
            json.dumps(checkpoint.versions(self.registry), indent=2) + "\n"
        )
        if self.evaluation is not None:
            (temporary / RETRIEVAL_FILE).write_text(json.dumps(self.evaluation, indent=2) + "\n")

    def _loader(self, pairs: Sequence[Pair], targets: torch.Tensor, shuffle: bool) -> DataLoader[Any]:
        train, spec = self.train_config, self.spec
        options = self.loaded.config.model.modalities[self.modality].preprocess
        max_mb = self.loaded.config.model.max_input_mb

        def prepare(path: Path) -> torch.Tensor:
            return prepare_input(spec, path, options, max_mb).tensor

        return DataLoader(
            PairDataset(pairs, prepare, targets),
            batch_size=train.batch_size,
            sampler=EpochSampler(len(pairs), train.seed, shuffle),
            collate_fn=collate,
            num_workers=train.num_workers,
            drop_last=False,
            generator=torch.Generator().manual_seed(train.seed),
        )


def _modalities(loaded: LoadedConfig) -> tuple[str, str]:
    """``(bind.modality, bind.target)``, both enabled in ``model.modalities``."""
    bind, enabled = loaded.config.bind, loaded.config.model.modalities
    if not bind.modality:
        raise UsageError(
            "bind.modality is not set", hint="name the modality whose encoder trains: bind.modality=NAME"
        )
    for key, name in (("bind.modality", bind.modality), ("bind.target", bind.target)):
        if name not in enabled:
            raise UsageError(
                f"{key}={name} is not in model.modalities ({', '.join(enabled) or 'none'})",
                hint=f"enable it: model.modalities.{name}={{}}",
            )
    if bind.modality == bind.target:
        raise UsageError(
            f"bind.modality and bind.target are both {bind.target}", hint="bind one modality to another"
        )
    return bind.modality, bind.target


def _select_trainable(encoder: nn.Module, prefixes: Sequence[str], modality: str) -> list[nn.Parameter]:
    """The encoder's parameters named by ``prefixes`` (all without), set to train; the rest frozen."""
    named = list(encoder.named_parameters())
    chosen = [p for name, p in named if not prefixes or any(name.startswith(prefix) for prefix in prefixes)]
    if not chosen:
        some = ", ".join(name for name, _ in named[:5]) or "none"
        raise UsageError(
            f"bind.trainable={list(prefixes)} names none of the {modality} encoder's parameters "
            f"(they start: {some})",
            hint="name prefixes of its parameters, or leave bind.trainable empty to train all of them",
        )
    encoder.requires_grad_(False)
    for parameter in chosen:
        parameter.requires_grad_(True)
    return chosen


def bind(
    loaded: LoadedConfig, registry: Registry, *, resume: str | None = None, log: Callable[[str], None] = print
) -> RunResult:
    """Bind as ``loaded`` says; ``resume`` is "latest" or a checkpoint directory."""
    binder = Binder(loaded, registry, resume=resume, log=log)
    try:
        return binder.fit()
    finally:
        binder.accelerator.end_training()


__all__ = ["ENCODERS_DIR", "RETRIEVAL_FILE", "Binder", "bind"]
