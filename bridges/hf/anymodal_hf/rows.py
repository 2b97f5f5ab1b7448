"""A transformers KV cache's batch rows: keep some (:func:`select_rows`), join caches of other rows
to it (:func:`join_rows`), take one out on its own (:func:`row_cache`), for continuous batching.

A cache holds, per layer, keys and values ``[batch, heads, positions, head_dim]``: transformers 5.x
in ``cache.layers[i].keys/values``, 4.x in ``cache.key_cache[i]``/``value_cache[i]``, and the
legacy form is a tuple of ``(keys, values)`` per layer. Rows of different lengths are aligned at
their ends: the shorter ones get zero positions on the left, which their attention mask hides
(``0`` there), as with a left-padded prompt. Only caches of plain layers, every position kept
(not a sliding window or a recurrent state), can be joined or split (:func:`joinable`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from anymodal_hf.kv import Pairs, croppable, layer_pairs, with_pairs


def select_rows(cache: Any, index: torch.Tensor) -> Any:
    """``cache`` with only the batch rows ``index``: in place for a transformers ``Cache``
    (``batch_select_indices``, in 4.45+ and 5.x), a new tuple for the legacy tuple of
    ``(keys, values)`` per layer."""
    select = getattr(cache, "batch_select_indices", None)
    if callable(select):
        select(index)
        return cache
    if isinstance(cache, tuple):
        return tuple(tuple(tensor[index] for tensor in layer) for layer in cache)
    raise TypeError(f"cannot drop rows from a KV cache of type {type(cache).__name__}")


def joinable(cache: Any) -> bool:
    """Whether rows of ``cache`` can be joined to others' or taken out alone."""
    if isinstance(cache, tuple):
        return True
    return croppable(cache) and layer_pairs(cache) is not None


def join_rows(parts: list[tuple[Any, torch.Tensor]]) -> tuple[Any, torch.Tensor]:
    """One cache and attention mask over the rows of every ``(cache, mask [rows, positions])`` in
    ``parts``, in order, each part's positions right-aligned to the longest (see the module
    docstring). The first part's cache object is reused; the others are left as they were."""
    longest = max(mask.shape[1] for _, mask in parts)
    masks = [F.pad(mask, (longest - mask.shape[1], 0)) for _, mask in parts]
    per_part = [layer_pairs(cache) for cache, _ in parts]
    if any(pairs is None for pairs in per_part):
        raise TypeError("these KV caches cannot be joined (a layer keeps a window or a state)")
    layers = len(per_part[0] or [])
    joined: Pairs = []
    for layer in range(layers):
        keys, values = [], []
        for pairs, (_, mask) in zip(per_part, parts, strict=True):
            assert pairs is not None
            pad = longest - mask.shape[1]
            key, value = pairs[layer]
            keys.append(F.pad(key, (0, 0, pad, 0)))
            values.append(F.pad(value, (0, 0, pad, 0)))
        joined.append((torch.cat(keys), torch.cat(values)))
    return with_pairs(parts[0][0], joined, copy_first=False), torch.cat(masks)


def row_cache(cache: Any, row: int, start: int) -> Any:
    """A new cache of batch row ``row`` alone, from position ``start`` (its padding cut off),
    sharing no tensor with ``cache``."""
    pairs = layer_pairs(cache)
    if pairs is None:
        raise TypeError(f"cannot take a row out of a KV cache of type {type(cache).__name__}")
    alone = [
        (key[row : row + 1, :, start:].clone(), value[row : row + 1, :, start:].clone())
        for key, value in pairs
    ]
    return with_pairs(cache, alone, copy_first=True)
