"""Wording of messages: did-you-mean suggestions for unknown names and keys, counted nouns."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def plural(count: int, noun: str) -> str:
    """``"1 record"``, ``"3 records"``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
