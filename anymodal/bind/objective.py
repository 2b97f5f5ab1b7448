"""ImageBind's objective: a symmetric InfoNCE between the bound modality's embeddings and the frozen
target modality's embeddings of the same samples, every other sample of the batch a negative.

Both sides are L2-normalised and their cosine similarities multiplied by a logit scale (one over
the temperature). ImageBind fixes it per modality (audio 20, thermal 10, depth and IMU 5) and
learns it for text from ``1/0.07``, clamped at 100; here it is ``bind.logit_scale`` (20 by
default), learned from there with ``bind.learn_logit_scale``. With ``bind.queue_size``, the targets
of the last batches wait in a queue and serve as more negatives for the bound side (useful when
batches are small, as on a CPU).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: ImageBind's clamp on a learned logit scale.
MAX_LOGIT_SCALE = 100.0


class InfoNCE(nn.Module):
    """``forward(bound [B, D], target [B, D], queued [Q, D] | None) -> loss``."""

    def __init__(self, logit_scale: float = 20.0, learnable: bool = False) -> None:
        super().__init__()
        if not 0 < logit_scale <= MAX_LOGIT_SCALE:
            raise ValueError(f"logit_scale must be in (0, {MAX_LOGIT_SCALE:g}], not {logit_scale}")
        log_scale = torch.tensor(math.log(logit_scale))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(
        self, bound: torch.Tensor, target: torch.Tensor, queued: torch.Tensor | None = None
    ) -> torch.Tensor:
        bound, target = F.normalize(bound.float(), dim=-1), F.normalize(target.float(), dim=-1)
        if queued is not None and len(queued):
            candidates = torch.cat([target, F.normalize(queued.float(), dim=-1)])
        else:
            candidates = target
        labels = torch.arange(len(bound), device=bound.device)
        forward = F.cross_entropy(self.scale * bound @ candidates.T, labels)
        backward = F.cross_entropy(self.scale * target @ bound.T, labels)
        return (forward + backward) / 2


class TargetQueue:
    """The targets of the last batches, newest last, at most ``size`` (checkpointed with the run)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: torch.Tensor | None = None

    def push(self, targets: torch.Tensor) -> None:
        if self.size <= 0:
            return
        added = targets.detach().float()
        self.items = added if self.items is None else torch.cat([self.items.to(added.device), added])
        self.items = self.items[-self.size :]

    def state_dict(self) -> dict[str, Any]:
        return {"items": None if self.items is None else self.items.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.items = state["items"]


def recall_at(bound: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Cross-modal retrieval over ``N`` pairs: for each bound embedding, whether its own target is
    among the ``k`` most similar of all ``N`` targets (``bound_to_target_recall_at_k``), and the
    other way (``target_to_bound_recall_at_k``)."""
    similarity = F.normalize(bound.float(), dim=-1) @ F.normalize(target.float(), dim=-1).T
    found: dict[str, float] = {}
    for name, matrix in (("bound_to_target", similarity), ("target_to_bound", similarity.T)):
        own = matrix.diagonal().unsqueeze(1)
        rank = (matrix >= own).sum(dim=1) - 1  # candidates at or above the right one: a tie counts against
        for k in ks:
            found[f"{name}_recall_at_{k}"] = float((rank < k).float().mean())
    return found
