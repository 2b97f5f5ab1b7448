"""Durations as messages print them: ``1.75 ms``, ``2.00 s``, ``12.50 min``, ``10.00 h``.

Milliseconds below one second, seconds below a minute, minutes below an hour, then hours, with two
decimals. The unit is chosen after rounding, so 0.999996 s reads ``1.00 s``, never ``1000.00 ms``.
:func:`format_durations` adds decimals (up to six) where two different durations would otherwise
read the same, so "its header says 2.00 s, it holds 2.00 s" cannot happen.

The same module as ``anymodal_audio.durations`` (a plugin imports only anymodal, so the
two keep a copy each).
"""

from __future__ import annotations

import math

_MOST_DECIMALS = 6


def format_duration(seconds: float, decimals: int = 2) -> str:
    """``seconds`` in the largest unit that keeps the value below 60 (1000 for milliseconds)."""
    if not math.isfinite(seconds) or seconds < 0:
        return f"{seconds} s"
    if round(seconds * 1000, decimals) < 1000:
        return f"{seconds * 1000:.{decimals}f} ms"
    if round(seconds, decimals) < 60:
        return f"{seconds:.{decimals}f} s"
    if round(seconds / 60, decimals) < 60:
        return f"{seconds / 60:.{decimals}f} min"
    return f"{seconds / 3600:.{decimals}f} h"


def format_durations(*durations: float) -> list[str]:
    """Each of ``durations`` formatted, with the fewest decimals (two to six) that tell apart
    those that differ."""
    for decimals in range(2, _MOST_DECIMALS + 1):
        texts = [format_duration(seconds, decimals) for seconds in durations]
        if len(set(texts)) == len(set(durations)):
            break
    return texts
