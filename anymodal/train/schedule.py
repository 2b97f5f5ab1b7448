"""Learning-rate schedule: linear warm-up, then cosine, linear or constant decay."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from anymodal.config.schema import ScheduleConfig


def warmup_steps(config: ScheduleConfig, total_steps: int) -> int:
    """``warmup_steps`` when set, else ``warmup_ratio`` of all optimizer steps."""
    if config.warmup_steps is not None:
        return min(config.warmup_steps, total_steps)
    return int(config.warmup_ratio * total_steps)


def lr_factor(step: int, config: ScheduleConfig, total_steps: int) -> float:
    """The multiplier of the base learning rate for optimizer step ``step`` (0-based).

    Warm-up rises linearly and reaches 1 on its last step; decay then runs from 1 to
    ``min_lr_ratio`` over the remaining steps.
    """
    warmup = warmup_steps(config, total_steps)
    if step < warmup:
        return (step + 1) / warmup
    if config.decay == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    shape = 1.0 - progress if config.decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * shape


def make_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig, total_steps: int) -> LambdaLR:
    return LambdaLR(optimizer, lambda step: lr_factor(step, config, total_steps))
