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

#: Each layer's ``(keys, values)``.
Pairs = list[tuple[torch.Tensor, torch.Tensor]]


def _raw_pairs(cache: Any) -> list[tuple[Any, Any]]:
    if isinstance(cache, tuple):  # the legacy form: (keys, values) per layer
        return [(layer[0], layer[1]) for layer in cache]
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(getattr(layer, "keys", None), getattr(layer, "values", None)) for layer in layers]
    return list(zip(getattr(cache, "key_cache", []), getattr(cache, "value_cache", []), strict=True))


def layer_pairs(cache: Any) -> Pairs | None:
    """Each layer's ``(keys, values)`` of ``cache``, or None when some layer holds no such tensors."""
    pairs = _raw_pairs(cache)
    if not pairs or not all(isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor) for k, v in pairs):
        return None
    return pairs


def with_pairs(cache: Any, pairs: Pairs, copy_first: bool) -> Any:
    """``cache`` (or, with ``copy_first``, a shallow copy of it, sharing no layer) holding ``pairs``."""
    if isinstance(cache, tuple):
        return tuple(pairs)
    target = copy.copy(cache) if copy_first else cache
    if getattr(cache, "layers", None) is not None:
        layers = [copy.copy(layer) for layer in cache.layers] if copy_first else cache.layers
        for layer, (key, value) in zip(layers, pairs, strict=True):
            layer.keys, layer.values = key, value
        target.layers = layers
    else:
        target.key_cache = [key for key, _ in pairs]
        target.value_cache = [value for _, value in pairs]
    return target


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
        tensors = [t for pair in _raw_pairs(self.cache) for t in pair if isinstance(t, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def crop(self, length: int) -> None:
        drop = self.length - length
        if drop < 0:
            raise ValueError(f"cannot crop a cache of {self.length} positions to {length}")
        if drop:
            self.cache.crop(-drop)

    def prefix(self, length: int) -> HFKVCache:
        if not 0 <= length <= self.length:
            raise ValueError(f"a cache of {self.length} positions has no prefix of {length}")
        pairs = layer_pairs(self.cache)
        if pairs is None:  # a layer the slicing does not know: copy it all, then cut it back
            kept = HFKVCache(copy.deepcopy(self.cache))
            kept.crop(length)
            return kept
        cut = [(key[..., :length, :].clone(), value[..., :length, :].clone()) for key, value in pairs]
        return HFKVCache(with_pairs(self.cache, cut, copy_first=True))
