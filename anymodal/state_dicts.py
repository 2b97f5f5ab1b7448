"""Comparing state dicts by key and shape, without importing torch (public: plugins with their own
checkpoint formats report mismatches the way core does)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def state_dict_mismatches(expected: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
    """What keeps ``state`` from loading strictly into a module whose state dict is ``expected``:
    a few missing, unexpected and mis-shaped keys each, as phrases for one error line."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(key for key in set(expected) & set(state) if expected[key].shape != state[key].shape)
    problems = []
    if missing:
        problems.append(f"missing {_sample(missing)}")
    if unexpected:
        problems.append(f"unexpected {_sample(unexpected)}")
    if wrong:
        shapes = [f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}" for key in wrong]
        problems.append(f"wrong shape {_sample(shapes)}")
    return problems


def _sample(items: list[str]) -> str:
    shown = ", ".join(items[:3])
    return f"{shown} (+{len(items) - 3} more)" if len(items) > 3 else shown
