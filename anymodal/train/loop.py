"""The optimisation loop that ``anymodal train`` and ``anymodal bind`` share, on accelerate: one
process, DDP, DeepSpeed ZeRO or FSDP, as launched.

:class:`Loop` is AdamW with warm-up and decay (``train.*``), gradient accumulation, clipping and
(on CUDA) bf16 autocast, all through accelerate; it logs to ``metrics.jsonl`` (and TensorBoard
when installed), evaluates on the held-out split, and writes checkpoints
(:mod:`anymodal.train.checkpoint`: written aside, renamed into place). An interruption (Ctrl-C,
a corrupt input found mid-run) writes a checkpoint at the last completed optimizer step first,
with the random state as it was then, so ``--resume`` continues exactly where an uninterrupted
run would have been. What is trained, on what, and what a checkpoint holds besides the loop's
state is the subclass's: :class:`~anymodal.train.trainer.Trainer` (projectors and LoRA on
conversations), :class:`~anymodal.bind.binder.Binder` (an encoder on paired samples).
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from anymodal.config.schema import TrainConfig
from anymodal.contract.errors import AnymodalError
from anymodal.train import checkpoint
from anymodal.train.metrics import MetricsLog
from anymodal.train.schedule import make_scheduler


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
    #: The held-out split's figures at the end (``loss`` for ``anymodal train``), or None without one.
    evaluation: dict[str, float] | None

    @property
    def eval_loss(self) -> float | None:
        return None if self.evaluation is None else self.evaluation.get("loss")


StepHook = Callable[[int, float], None]


class Loop(ABC):
    """One run of the loop; a subclass says what it trains (see the module docstring)."""

    accelerator: Accelerator
    train_config: TrainConfig
    output_dir: Path
    resume_from: Path | None
    log: Callable[[str], None]

    @abstractmethod
    def loaders(self) -> tuple[DataLoader[Any], DataLoader[Any] | None]:
        """The training batches, and the held-out ones (None without a held-out split)."""

    @abstractmethod
    def wrapped_model(self) -> nn.Module:
        """What accelerate wraps: ``forward(batch)`` returns the loss first (a tuple, or the loss)."""

    @abstractmethod
    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer moves."""

    @abstractmethod
    def evaluate(self, wrapped: nn.Module, loader: Any) -> dict[str, float]:
        """The held-out split's figures, across all processes."""

    @abstractmethod
    def write_files(self, temporary: Path, wrapped: nn.Module) -> None:
        """Write what a checkpoint holds besides the loop's state into ``temporary`` (called on every
        process, for gathering sharded weights; only the main process writes)."""

    def batch_counts(self, batch: Any) -> tuple[int, int]:
        """``(samples, tokens)`` in one micro-batch, for the throughput figures."""
        return len(batch), 0

    @abstractmethod
    def before_fit(self) -> None:
        """Work before the loaders are made (reporting the data, filling a feature cache)."""

    @abstractmethod
    def set_train_mode(self) -> None:
        """Put the modules in training mode (frozen ones stay in eval mode)."""

    def fit(self, on_step: StepHook | None = None) -> RunResult:
        accelerator, train = self.accelerator, self.train_config
        self.before_fit()
        train_loader, eval_loader = self.loaders()
        steps_per_epoch = -(-len(train_loader) // train.grad_accum)
        total_steps = train.max_steps or steps_per_epoch * train.epochs
        wrapped = self.wrapped_model()
        parameters = self.trainable_parameters()
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
        evaluation = None

        def save() -> Path:
            nonlocal saved_step
            position.scheduler = scheduler.state_dict()
            saved_step = position.step
            return self._save(wrapped, position)

        self.set_train_mode()
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
                        output = wrapped(batch)
                        loss = output[0] if isinstance(output, tuple) else output
                        accelerator.backward(loss)
                        grad_norm = None
                        if accelerator.sync_gradients and train.max_grad_norm > 0:
                            grad_norm = accelerator.clip_grad_norm_(parameters, train.max_grad_norm)
                        optimizer.step()
                        optimizer.zero_grad()
                    step_losses.append(loss.detach())
                    counted = self.batch_counts(batch)
                    samples, tokens = samples + counted[0], tokens + counted[1]
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
                        evaluation = self._evaluated(wrapped, eval_loader)
                        metrics.eval(position.step, evaluation)
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
            evaluation = self._evaluated(wrapped, eval_loader)
            metrics.eval(position.step, evaluation)
        if position.step > saved_step or last_saved is None:
            last_saved = save()
        metrics.close()
        return RunResult(self.output_dir, position.step, last_saved, losses, evaluation)

    def _evaluated(self, wrapped: nn.Module, loader: Any) -> dict[str, float]:
        """:meth:`evaluate` in eval mode, training mode again after."""
        wrapped.eval()
        try:
            with torch.no_grad():
                return self.evaluate(wrapped, loader)
        finally:
            self.set_train_mode()

    def _save(self, wrapped: nn.Module, position: Position) -> Path:
        accelerator = self.accelerator
        temporary = self.output_dir / f".tmp-{checkpoint.checkpoint_name(position.step)}"
        accelerator.save_state(str(temporary / checkpoint.STATE_DIR))
        accelerator.wait_for_everyone()  # every process has written its RNG state before the rename
        self.write_files(temporary, wrapped)
        final = self.output_dir / checkpoint.checkpoint_name(position.step)
        if accelerator.is_main_process:
            final = checkpoint.publish(
                temporary, self.output_dir, position.step, self.train_config.keep_checkpoints
            )
        accelerator.wait_for_everyone()
        return final


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
