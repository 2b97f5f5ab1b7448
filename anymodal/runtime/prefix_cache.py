"""The LLM's KV caches of recent conversations, kept to continue from (``generation.kv_cache_mb``).

A chat's turn five would otherwise run the LLM over turns one to four again. Each entry is a
bridge's :class:`~anymodal.KVCache` and the identity of every position it holds
(:func:`position_keys`): a token id, or, for a position an input's projection fills, the content
keys of the inputs summed there and the offset in their slot. A new prompt continues the entry
sharing the longest start with it, by those identities (:meth:`PrefixStore.take`), so whatever
made the history's tokens differ from what ran before (a reply cut at a stop string or at
max_new_tokens and re-tokenised, a template that changes a past turn's tokens when one is added,
a reset, other media) costs only the positions from the first difference on, and nothing is
reused that would not be computed the same. At least the prompt's last position always runs,
for the logits of the first reply token.

An entry taken whole, or all but a short tail (:data:`IN_PLACE_TAIL`), leaves the store and is
extended in place by the reply; one that shares less (another conversation with the same system
prompt, a chat after a reset) stays, and the reply starts from a copy of the shared part. The
store holds at most ``max_bytes``, dropping the least recently used entries first; a cache
larger than that is not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anymodal.contract.bridge import KVCache
    from anymodal.runtime.model import PreparedInput
    from anymodal.runtime.processor import Slot

#: A token id, or (``"input"``, the content keys of the inputs in a slot, offset in the slot).
Position = int | tuple[str, tuple[str, ...], int]

#: Positions an entry may hold past the shared start and still be cut back in place, not copied:
#: the last reply's ids that re-tokenise differently, or the one never run (the reply's last).
IN_PLACE_TAIL = 64


def position_keys(
    input_ids: Sequence[int], slots: Sequence[Slot], inputs: Sequence[PreparedInput]
) -> tuple[Position, ...]:
    """The identity of each prompt position: its token id, or what fills it for a slot."""
    keys: list[Position] = list(input_ids)
    for slot in slots:
        content = tuple(inputs[i].key for i in slot.input_indices)
        for offset in range(slot.length):
            keys[slot.start + offset] = ("input", content, offset)
    return tuple(keys)


def common_length(a: Sequence[Position], b: Sequence[Position]) -> int:
    """How many positions ``a`` and ``b`` share from the start."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


@dataclass
class Entry:
    keys: tuple[Position, ...]
    cache: KVCache


class PrefixStore:
    """KV caches by the positions they hold, least recently used first, within ``max_bytes``.

    Not thread-safe: the model's one thread uses it (chat, or the server's model thread)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be more than 0, not {max_bytes}")
        self.max_bytes = max_bytes
        self.entries: list[Entry] = []
        #: Prompts that continued a kept cache, and those that ran from the start.
        self.hits = 0
        self.misses = 0
        #: Prompt positions not run again thanks to the store, since it was made.
        self.reused_positions = 0

    @property
    def nbytes(self) -> int:
        return sum(entry.cache.nbytes for entry in self.entries)

    def take(self, keys: Sequence[Position]) -> tuple[KVCache | None, int]:
        """The cache to continue ``keys`` from and how many of its positions it holds (``None, 0``
        when nothing is shared): at most ``len(keys) - 1``, so the last position still runs."""
        best, shared = None, 0
        for entry in self.entries:
            count = min(common_length(entry.keys, keys), len(keys) - 1, entry.cache.length)
            if count > shared:
                best, shared = entry, count
        if best is None:
            self.misses += 1
            return None, 0
        self.hits += 1
        self.reused_positions += shared
        if best.cache.length - shared <= IN_PLACE_TAIL:
            self.entries.remove(best)
            best.cache.crop(shared)
            return best.cache, shared
        self.entries.remove(best)
        self.entries.append(best)  # used: now the newest
        return best.cache.prefix(shared), shared

    def put(self, keys: Sequence[Position], cache: KVCache) -> bool:
        """Keep ``cache``, which holds exactly the positions ``keys``; whether it was kept (not when
        it is larger than the store, or its length is not that of ``keys``). Entries it covers
        (their positions a start of ``keys``) are dropped, then the oldest beyond ``max_bytes``."""
        keys = tuple(keys)
        if cache.length != len(keys) or cache.nbytes > self.max_bytes:
            return False
        self.entries = [e for e in self.entries if common_length(e.keys, keys) < len(e.keys)]
        self.entries.append(Entry(keys, cache))
        while self.nbytes > self.max_bytes:
            self.entries.pop(0)
        return True

    def clear(self) -> None:
        self.entries.clear()
