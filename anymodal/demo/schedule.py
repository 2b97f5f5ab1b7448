"""Which attributes each file of a modality gets: every class equally often, every combination in turn.

The schedule runs through all combinations of the attribute classes (160 for images) in cycles,
each cycle in a fresh random order, so over many files no two attributes are correlated ("red
is always a circle") and every combination is seen. Within a cycle the order is not plain
shuffled: each next combination is one whose classes have been used least so far, so that every
prefix is balanced per attribute too. Twelve images already show all four colours, all five
positions, both sizes and all four shapes.

A schedule depends on its generator alone, not on how many files are asked for: the schedule for
12 files is the first 12 entries of the one for 1000, so a small world is a prefix of a large one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["balanced_schedule"]


def balanced_schedule(
    attributes: Mapping[str, Sequence[str]], n: int, rng: np.random.Generator
) -> list[dict[str, str]]:
    """``n`` attribute assignments (attribute -> class), balanced per class and per combination.

    Every run of ``len(combinations)`` entries starting at a multiple of it holds each combination
    once; any prefix has each class of each attribute within one or two of an equal share.
    """
    names = list(attributes)
    classes = [list(attributes[name]) for name in names]
    combos = np.array(list(itertools.product(*(range(len(c)) for c in classes))), dtype=np.int64)
    counts = [np.zeros(len(c), dtype=np.int64) for c in classes]
    schedule: list[dict[str, str]] = []
    while len(schedule) < n:
        remaining = combos[rng.permutation(len(combos))]
        while len(remaining) and len(schedule) < n:
            excess = np.stack(
                [counts[a][remaining[:, a]] - counts[a].min() for a in range(len(names))], axis=1
            )
            # Least-used first: the largest excess over any attribute, then the total excess; ties
            # go to the earliest in this cycle's random order.
            order = np.lexsort((np.arange(len(remaining)), excess.sum(axis=1), excess.max(axis=1)))
            pick = int(order[0])
            combo = remaining[pick]
            for a in range(len(names)):
                counts[a][combo[a]] += 1
            schedule.append({name: classes[a][int(combo[a])] for a, name in enumerate(names)})
            remaining = np.delete(remaining, pick, axis=0)
    return schedule
