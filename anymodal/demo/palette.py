"""The four named colours: a broad range of RGB values each, and the exact values people type.

A colour is drawn from its range (red is R 170-255, G 0-60, B 0-60, and so on) or, now and then,
is a "named" value such as (255, 0, 0) or (0, 128, 0), as in a quick plot or a PIL drawing. Within
the ranges a colour must stay unambiguous: its own channels exceed the others by at least
:data:`MIN_CONTRAST`, so no green comes out as a greenish grey.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLOUR_RANGES", "NAMED_COLOURS", "NAMED_SHARE", "pick_colour", "prototype"]

RGB = tuple[int, int, int]

#: colour -> (R, G, B) ranges, inclusive.
COLOUR_RANGES: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "red": ((170, 255), (0, 60), (0, 60)),
    "green": ((0, 80), (100, 255), (0, 90)),
    "blue": ((0, 70), (0, 100), (150, 255)),
    "yellow": ((200, 255), (190, 255), (0, 90)),
}
#: colour -> the exact values of it people use.
NAMED_COLOURS: dict[str, tuple[RGB, ...]] = {
    "red": ((255, 0, 0),),
    "green": ((0, 128, 0), (0, 255, 0)),
    "blue": ((0, 0, 255),),
    "yellow": ((255, 255, 0),),
}
#: Share of shapes drawn in an exact named colour.
NAMED_SHARE = 0.15
#: colour -> its own channels (the ones that are high).
_OWN_CHANNELS: dict[str, tuple[int, ...]] = {"red": (0,), "green": (1,), "blue": (2,), "yellow": (0, 1)}
#: How far the lowest own channel must exceed the highest other one.
MIN_CONTRAST = 60


def pick_colour(name: str, rng: np.random.Generator, named: bool | None = None) -> tuple[RGB, bool]:
    """An RGB value of colour ``name`` and whether it is an exact named value.

    named: force (True) or forbid (False) a named value; None draws it with :data:`NAMED_SHARE`.
    """
    if named is None:
        named = bool(rng.random() < NAMED_SHARE)
    if named:
        choices = NAMED_COLOURS[name]
        return choices[int(rng.integers(len(choices)))], True
    own = _OWN_CHANNELS[name]
    while True:
        rgb = tuple(int(rng.integers(low, high + 1)) for low, high in COLOUR_RANGES[name])
        others = [rgb[c] for c in range(3) if c not in own]
        if min(rgb[c] for c in own) - max(others) >= MIN_CONTRAST:
            return (rgb[0], rgb[1], rgb[2]), False


def prototype(name: str) -> RGB:
    """The middle of colour ``name``'s range: what "red" looks like on average."""
    low_high = COLOUR_RANGES[name]
    return (
        (low_high[0][0] + low_high[0][1]) // 2,
        (low_high[1][0] + low_high[1][1]) // 2,
        (low_high[2][0] + low_high[2][1]) // 2,
    )
