"""The training loop, on accelerate: one process, DDP, DeepSpeed ZeRO or FSDP, as launched.

Run it with :func:`train`. The loop is AdamW with warm-up and decay, gradient accumulation,
clipping and (on CUDA) bf16 autocast, all through accelerate; it logs to ``metrics.jsonl`` (and
TensorBoard when installed), evaluates on the held-out split, and writes checkpoints
(:mod:`anymodal.train.checkpoint`). An interruption (Ctrl-C, a corrupt input found mid-run) writes a
checkpoint at the last completed optimizer step first, with the random state as it was then, so
``--resume`` continues exactly where an uninterrupted run would have been.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from anymodal.config.load import LoadedConfig
from anymodal.contract.errors import AnymodalError
from anymodal.contract.registry import Registry
from anymodal.runtime.model import AnyModalModel
from anymodal.train import checkpoint
from anymodal.train.batches import Batch, EpochSampler, ExampleDataset, encoder_outputs, make_collate
from anymodal.train.data import MediaRef
from anymodal.train.engine import make_accelerator, trainable_state
from anymodal.train.examples import IGNORE_INDEX, Example
from anymodal.train.features import FeatureCache
from anymodal.train.metrics import MetricsLog
from anymodal.train.schedule import make_scheduler
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


@dataclass
class Position:
    """Where the run is, at the last completed optimizer step; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    #: Micro-batches of ``epoch`` consumed by ``step`` (this process's share).
    batches: int = 0
    scheduler: dict[str, Any] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "batches": self.batches, "scheduler": self.scheduler}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.epoch, self.batches = state["step"], state["epoch"], state["batches"]
        self.scheduler = state["scheduler"]


@dataclass
class RunResult:
    output_dir: Path
    step: int
    last_checkpoint: Path | None
    losses: list[float]
    eval_loss: float | None


StepHook = Callable[[int, float], None]


class Trainer:
    """One training run. Build it with :meth:`from_config`; :meth:`fit` trains."""

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

    def fit(self, on_step: StepHook | None = None) -> RunResult:
        accelerator, train = self.accelerator, self.train_config
        self.log(self.data.summary())
        self.log(self.describe())
        if self.cache is not None:
            self._fill_cache()
        train_loader = self._loader(self.data.train, shuffle=True)
        eval_loader = self._loader(self.data.eval, shuffle=False) if self.data.eval else None
        steps_per_epoch = math.ceil(len(train_loader) / train.grad_accum)
        total_steps = train.max_steps or steps_per_epoch * train.epochs
        wrapped = TrainingModel(self.model)
        parameters = list(self.trainable.values())
        optimizer = torch.optim.AdamW(
            parameters,
            lr=train.optimizer.lr,
            betas=(train.optimizer.betas[0], train.optimizer.betas[1]),
            eps=train.optimizer.eps,
            weight_decay=train.optimizer.weight_decay,
        )
        scheduler = make_scheduler(optimizer, train.schedule, total_steps)
        wrapped, optimizer, train_loader = accelerator.prepare(wrapped, optimizer, train_loader)
        if eval_loader is not None:
            eval_loader = accelerator.prepare(eval_loader)
        position = Position()
        accelerator.register_for_checkpointing(position)
        if self.resume_from is not None:
            accelerator.load_state(str(self.resume_from / checkpoint.STATE_DIR))
            scheduler.load_state_dict(position.scheduler)
            self.log(f"resumed from {self.resume_from} at step {position.step}")
        metrics = MetricsLog(self.output_dir, accelerator.is_main_process, position.step, total_steps)
        losses: list[float] = []
        last_saved: Path | None = self.resume_from
        saved_step = position.step
        rng = _rng_state()
        eval_loss = None

        def save() -> Path:
            nonlocal saved_step
            position.scheduler = scheduler.state_dict()
            saved_step = position.step
            return self._save(wrapped, position)

        self.model.train()
        self.model.encoders.eval()
        try:
            while position.step < total_steps:
                train_loader.set_epoch(position.epoch)
                batches = (
                    accelerator.skip_first_batches(train_loader, position.batches)
                    if position.batches
                    else train_loader
                )
                step_losses: list[torch.Tensor] = []
                started, samples, tokens = time.perf_counter(), 0, 0
                for batch in batches:
                    batch = batch.to(accelerator.device)
                    with accelerator.accumulate(wrapped):
                        loss, _ = wrapped(batch)
                        accelerator.backward(loss)
                        grad_norm = None
                        if accelerator.sync_gradients and train.max_grad_norm > 0:
                            grad_norm = accelerator.clip_grad_norm_(parameters, train.max_grad_norm)
                        optimizer.step()
                        optimizer.zero_grad()
                    step_losses.append(loss.detach())
                    samples += batch.input_ids.shape[0]
                    tokens += int(batch.attention_mask.sum())
                    if not accelerator.sync_gradients:
                        continue
                    lr = scheduler.get_last_lr()[0]  # the rate this step used
                    scheduler.step()
                    position.step += 1
                    position.batches += len(step_losses)
                    rng = _rng_state()
                    step_loss = accelerator.reduce(torch.stack(step_losses).mean(), "mean").item()
                    losses.append(step_loss)
                    elapsed = time.perf_counter() - started
                    metrics.step(
                        position.step,
                        epoch=position.epoch,
                        loss=step_loss,
                        lr=lr,
                        grad_norm=None if grad_norm is None else float(grad_norm),
                        samples_per_s=samples * accelerator.num_processes / elapsed,
                        tokens_per_s=tokens * accelerator.num_processes / elapsed,
                        log_every=train.log_every,
                    )
                    step_losses, started, samples, tokens = [], time.perf_counter(), 0, 0
                    if on_step is not None:
                        on_step(position.step, step_loss)
                    if eval_loader is not None and train.eval_every and position.step % train.eval_every == 0:
                        eval_loss = self._evaluate(wrapped, eval_loader)
                        metrics.eval(position.step, eval_loss)
                    if train.save_every and position.step % train.save_every == 0:
                        last_saved = save()
                    if position.step >= total_steps:
                        break
                else:
                    position.epoch, position.batches = position.epoch + 1, 0
        except (KeyboardInterrupt, AnymodalError) as error:
            if position.step > saved_step:
                _set_rng_state(rng)  # as it was at the end of the last completed step
                optimizer.zero_grad()
                last_saved = save()
                what = "interrupted" if isinstance(error, KeyboardInterrupt) else f"stopped: {error}"
                self.log(f"{what}; saved {last_saved}; continue with --resume")
            metrics.close()
            raise
        if eval_loader is not None:
            eval_loss = self._evaluate(wrapped, eval_loader)
            metrics.eval(position.step, eval_loss)
        if position.step > saved_step or last_saved is None:
            last_saved = save()
        metrics.close()
        return RunResult(self.output_dir, position.step, last_saved, losses, eval_loss)

    def _evaluate(self, wrapped: nn.Module, loader: Any) -> float:
        """Mean loss per target token over the held-out split, across all processes.

        accelerate pads the last batches so every process gets as many; gather_for_metrics drops
        those repeats, so each held-out sample counts once.
        """
        self.model.eval()
        sums = []
        with torch.no_grad():
            for batch in loader:
                batch = batch.to(self.accelerator.device)
                _, logits = wrapped(batch)
                sums.append(self.accelerator.gather_for_metrics(_row_loss_sums(logits, batch.labels)))
        self.model.train()
        self.model.encoders.eval()
        total = torch.cat(sums).sum(dim=0)
        return float(total[0] / total[1].clamp(min=1))

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

    def _save(self, wrapped: nn.Module, position: Position) -> Path:
        accelerator = self.accelerator
        temporary = self.output_dir / f".tmp-{checkpoint.checkpoint_name(position.step)}"
        accelerator.save_state(str(temporary / checkpoint.STATE_DIR))
        accelerator.wait_for_everyone()  # every process has written its RNG state before the rename
        projectors, adapter = trainable_state(accelerator, wrapped, self.model)
        final = self.output_dir / checkpoint.checkpoint_name(position.step)
        if accelerator.is_main_process:
            if adapter is not None:
                self.model.bridge.save(temporary / checkpoint.ADAPTER_DIR, state_dict=adapter)
            checkpoint.write_model_files(
                temporary, self.loaded, projectors, adapter is not None, self.registry
            )
            final = checkpoint.publish(
                temporary, self.output_dir, position.step, self.train_config.keep_checkpoints
            )
        accelerator.wait_for_everyone()
        return final


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


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


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
