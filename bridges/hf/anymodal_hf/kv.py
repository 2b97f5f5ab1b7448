"""A transformers KV cache kept between replies (:class:`HFKVCache`, anymodal's ``KVCache``).

transformers 4.x and 5.x both keep a ``DynamicCache`` per layer of keys and values
``[batch, heads, positions, head_dim]``; 5.x holds them in ``cache.layers[i].keys/values``, 4.x in
``cache.key_cache[i]``/``value_cache[i]``. Both crop with a negative count of positions to drop
(4.x reads a negative ``max_length`` so; 5.x takes only that). A cache whose layers keep only a
window (sliding attention) or a state (linear attention) cannot be cut back to a prefix: such
models get no reuse (:func:`croppable`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

import anymodal


def _tensors(cache: Any) -> list[torch.Tensor]:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        pairs = [(getattr(layer, "keys", None), getattr(layer, "values", None)) for layer in layers]
    else:
        pairs = list(zip(getattr(cache, "key_cache", []), getattr(cache, "value_cache", []), strict=True))
    return [t for pair in pairs for t in pair if isinstance(t, torch.Tensor)]


def croppable(cache: Any) -> bool:
    """Whether ``cache`` can be cut back to its first positions (every layer a plain one)."""
    flag = getattr(cache, "is_croppable", True)
    if not (flag() if callable(flag) else flag):
        return False
    sliding = getattr(cache, "is_sliding", None)
    if isinstance(sliding, (list, tuple)) and any(sliding):
        return False
    return callable(getattr(cache, "crop", None))


class HFKVCache(anymodal.KVCache):
    """A transformers ``Cache`` of one sequence (batch 1) over :attr:`length` positions."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    @property
    def length(self) -> int:
        return int(self.cache.get_seq_length())

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in _tensors(self.cache))

    def crop(self, length: int) -> None:
        drop = self.length - length
        if drop < 0:
            raise ValueError(f"cannot crop a cache of {self.length} positions to {length}")
        if drop:
            self.cache.crop(-drop)

    def prefix(self, length: int) -> HFKVCache:
        kept = HFKVCache(copy.deepcopy(self.cache))
        kept.crop(length)
        return kept
