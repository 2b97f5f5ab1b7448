"""``anymodal train``: projectors (stage 1) and LoRA (stage 2) trained on conversations, as the
shared loop (:mod:`anymodal.train.loop`) runs them. Run it with :func:`train`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from anymodal.config.load import LoadedConfig
from anymodal.contract.registry import Registry
from anymodal.runtime.model import AnyModalModel
from anymodal.train import checkpoint
from anymodal.train.batches import Batch, EpochSampler, ExampleDataset, encoder_outputs, make_collate
from anymodal.train.data import MediaRef
from anymodal.train.engine import make_accelerator, trainable_state
from anymodal.train.examples import IGNORE_INDEX, Example
from anymodal.train.features import FeatureCache
from anymodal.train.loop import Loop, RunResult
from anymodal.train.setup import (
    TrainingData,
    build_model,
    parameter_counts,
    read_data,
    select_trainable,
    tokenize_data,
    with_weights_from,
)


class TrainingModel(nn.Module):
    """What accelerate wraps: one forward from a batch to the loss, so DDP sees every gradient."""

    def __init__(self, model: AnyModalModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean loss over the batch's target tokens, logits [batch, seq, vocab])``."""
        model = self.model
        outputs = encoder_outputs(batch.inputs, model.encode_features)
        projected = model.project(batch.modalities, outputs) if outputs else []
        embeds = model.fuse(batch.input_ids, batch.slots, projected, batch.counts)
        loss, logits = model.bridge.forward(embeds, batch.attention_mask, batch.labels)
        assert loss is not None  # labels were given
        return loss, logits


class Trainer(Loop):
    """One training run; :meth:`~anymodal.train.loop.Loop.fit` trains."""

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
        self.train_config = train = config.train
        self.output_dir = Path(train.output_dir)
        self.resume_from = checkpoint.find_checkpoint(resume, self.output_dir) if resume else None
        self.accelerator = make_accelerator(train, config.model.device)
        random.seed(train.seed)
        torch.manual_seed(train.seed)
        records = read_data(config, registry)  # before the model: a bad data file fails fast
        start = self.resume_from or (Path(train.init_from) if train.init_from else None)
        model_config = with_weights_from(config, start) if start else config
        device = self.accelerator.device
        # Under several CPU processes accelerate's device is "cpu:0", which is no device name to configure.
        self.model = build_model(model_config, registry, "cpu" if device.type == "cpu" else str(device))
        self.trainable = select_trainable(self.model, train)
        if train.gradient_checkpointing:
            self.model.bridge.enable_gradient_checkpointing()
        # Weights were initialised alike everywhere; from here each process draws its own dropout.
        torch.manual_seed(train.seed + self.accelerator.process_index)
        self.processor = self.model.prompt_processor(registry)
        self.data: TrainingData = tokenize_data(records, config, self.model, self.processor)
        self.cache = FeatureCache(Path(train.feature_cache), self.model) if train.feature_cache else None

    # --- reporting --------------------------------------------------------------------------

    def describe(self) -> str:
        """The trainable set and a memory estimate, as ``--dry-run`` prints them."""
        trainable, total = parameter_counts(self.model)
        llm = sum(p.numel() * p.element_size() for p in self.model.llm.parameters())
        encoders = sum(p.numel() * p.element_size() for p in self.model.encoders.parameters())
        # AdamW keeps two float32 moments per trainable weight, plus its float32 gradient.
        optimizer = trainable * 4 * 3
        longest = max(len(e.input_ids) for e in self.data.train)
        activations = self._activation_bytes(longest)
        total_bytes = llm + encoders + optimizer + activations
        return (
            f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.3f}%)\n"
            f"estimated memory per process: {_size(total_bytes)} (LLM {_size(llm)}, encoders "
            f"{_size(encoders)}, gradients and optimizer {_size(optimizer)}, activations "
            f"~{_size(activations)} for batch {self.train_config.batch_size} x {longest} tokens)"
        )

    def _activation_bytes(self, length: int) -> int:
        config = getattr(self.model.llm, "config", None)
        layers = int(getattr(config, "num_hidden_layers", 1))
        hidden = self.model.bridge.hidden_size
        per_layer = 34 if not self.train_config.gradient_checkpointing else 2  # rough bytes/token/hidden
        return self.train_config.batch_size * length * hidden * per_layer * layers

    # --- the run ----------------------------------------------------------------------------

    # --- the loop's parts -------------------------------------------------------------------

    def before_fit(self) -> None:
        self.log(self.data.summary())
        self.log(self.describe())
        if self.cache is not None:
            self._fill_cache()

    def loaders(self) -> tuple[DataLoader[Any], DataLoader[Any] | None]:
        train = self._loader(self.data.train, shuffle=True)
        return train, self._loader(self.data.eval, shuffle=False) if self.data.eval else None

    def wrapped_model(self) -> nn.Module:
        return TrainingModel(self.model)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.trainable.values())

    def batch_counts(self, batch: Batch) -> tuple[int, int]:
        return batch.input_ids.shape[0], int(batch.attention_mask.sum())

    def set_train_mode(self) -> None:
        self.model.train()
        self.model.encoders.eval()

    def evaluate(self, wrapped: nn.Module, loader: Any) -> dict[str, float]:
        """``loss``: the mean loss per target token over the held-out split, across all processes.

        accelerate pads the last batches so every process gets as many; gather_for_metrics drops
        those repeats, so each held-out sample counts once.
        """
        sums = []
        for batch in loader:
            batch = batch.to(self.accelerator.device)
            _, logits = wrapped(batch)
            sums.append(self.accelerator.gather_for_metrics(_row_loss_sums(logits, batch.labels)))
        total = torch.cat(sums).sum(dim=0)
        return {"loss": float(total[0] / total[1].clamp(min=1))}

    def _loader(self, examples: list[Example], shuffle: bool) -> DataLoader[Any]:
        train = self.train_config
        load: Callable[[MediaRef], Any]
        if self.cache is not None:
            load = self.cache.load
        else:
            model = self.model
            load = lambda ref: model.prepare(ref.modality, ref.path)  # noqa: E731 - tiny adapter
        return DataLoader(
            ExampleDataset(examples, load),
            batch_size=train.batch_size,
            sampler=EpochSampler(len(examples), train.seed, shuffle),
            collate_fn=make_collate(self.model.bridge.pad_token_id),
            num_workers=train.num_workers,
            # Its own generator, so making an iterator never draws from the global RNG that dropout uses.
            generator=torch.Generator().manual_seed(train.seed),
        )

    def _fill_cache(self) -> None:
        assert self.cache is not None
        refs = [ref for example in self.data.train + self.data.eval for ref in example.media]
        with self.accelerator.main_process_first():
            if self.accelerator.is_main_process:
                todo = len(self.cache.missing(refs))
                self.log(
                    f"feature cache {self.cache.directory} ({self.cache.describe()}): {todo} new input(s)"
                )
                encoded = self.cache.fill(refs, self.train_config.batch_size)
                if encoded < todo:
                    made = todo - encoded
                    self.log(f"feature cache: {made} made from full entries already there, {encoded} encoded")

    def write_files(self, temporary: Path, wrapped: nn.Module) -> None:
        projectors, adapter = trainable_state(self.accelerator, wrapped, self.model)
        if self.accelerator.is_main_process:
            if adapter is not None:
                self.model.bridge.save(temporary / checkpoint.ADAPTER_DIR, state_dict=adapter)
            checkpoint.write_model_files(
                temporary, self.loaded, projectors, adapter is not None, self.registry
            )


def _row_loss_sums(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[batch, 2]``: each row's summed next-token cross-entropy over its targets, and their count."""
    shifted = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), shifted, ignore_index=IGNORE_INDEX, reduction="none"
    )
    return torch.stack([losses.sum(dim=1), (shifted != IGNORE_INDEX).sum(dim=1).float()], dim=1)


def _size(count: int) -> str:
    """Bytes in the largest unit that keeps the number at least 1 (GiB at most)."""
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{value:.1f} {unit}"


def train(
    loaded: LoadedConfig, registry: Registry, *, resume: str | None = None, log: Callable[[str], None] = print
) -> RunResult:
    """Train as ``loaded`` says; ``resume`` is "latest" or a checkpoint directory. Ends by tearing
    down the process group of a distributed run (``accelerator.end_training``)."""
    trainer = Trainer(loaded, registry, resume=resume, log=log)
    try:
        return trainer.fit()
    finally:
        trainer.accelerator.end_training()
