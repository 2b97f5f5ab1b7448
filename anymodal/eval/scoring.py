"""Scoring and counting replies: a reply judged by word checks or matched exactly against the
reference answer, and ``(modality, kind, correct)`` outcomes counted into a table. Torch-free."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: A word as checks and replies are compared: a run of letters a-z (after lower-casing).
WORD = re.compile(r"[a-z]+")

#: attribute -> {"expect": [words], "reject": [words]}
Checks = Mapping[str, Mapping[str, Sequence[str]]]


def judge_reply(reply: str, checks: Checks) -> bool:
    """True when, for every attribute in ``checks``, the reply holds at least one of its ``expect``
    words and none of its ``reject`` words.

    Words are the runs of ``a-z`` in the lowercased reply, so "right" does not match "bright" and
    "red." matches "red"; check words are lowercased too. Empty ``checks`` is vacuously True; an
    attribute without ``expect`` words can never pass (:func:`load_eval_data` refuses both).
    """
    words = set(reply_words(reply))
    return all(
        any(word.lower() in words for word in check.get("expect", ()))
        and not any(word.lower() in words for word in check.get("reject", ()))
        for check in checks.values()
    )


def reply_words(text: str) -> list[str]:
    """The words a reply is judged by: the runs of ``a-z`` in the lowercased text."""
    return WORD.findall(text.lower())


def normalise_answer(text: str) -> str:
    """Lowercase, whitespace collapsed to single spaces, stripped, one trailing "." removed."""
    return " ".join(text.lower().split()).removesuffix(".").rstrip()


def exact_match(reply: str, reference: str) -> bool:
    """Whether ``reply`` and ``reference`` are equal after :func:`normalise_answer`."""
    return normalise_answer(reply) == normalise_answer(reference)


@dataclass(frozen=True)
class Tally:
    items: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else 0.0

    def add(self, correct: bool) -> Tally:
        return Tally(self.items + 1, self.correct + int(correct))

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "correct": self.correct, "accuracy": self.accuracy}


@dataclass
class Summary:
    """Counts overall, per modality (first-appearance order) and per modality and kind (sorted)."""

    overall: Tally
    by_modality: dict[str, Tally]
    by_kind: dict[str, dict[str, Tally]]


def summarise(outcomes: Iterable[tuple[str, str, bool]]) -> Summary:
    """Count ``(modality, kind, correct)`` outcomes; see :meth:`ScoredItem.outcome`."""
    overall = Tally()
    by_modality: dict[str, Tally] = {}
    by_kind: dict[str, dict[str, Tally]] = {}
    for modality, kind, correct in outcomes:
        overall = overall.add(correct)
        by_modality[modality] = by_modality.get(modality, Tally()).add(correct)
        kinds = by_kind.setdefault(modality, {})
        kinds[kind] = kinds.get(kind, Tally()).add(correct)
    sorted_kinds = {modality: dict(sorted(kinds.items())) for modality, kinds in by_kind.items()}
    return Summary(overall, by_modality, sorted_kinds)


def format_table(summary: Summary) -> str:
    """The summary as aligned text: a row per modality and kind, a ``(all)`` row per modality, and
    an ``overall`` row."""
    rows: list[tuple[str, str, Tally]] = []
    for modality, kinds in summary.by_kind.items():
        rows.extend((modality, kind, tally) for kind, tally in kinds.items())
        rows.append((modality, "(all)", summary.by_modality[modality]))
    rows.append(("overall", "", summary.overall))
    cells = [("modality", "kind", "items", "correct", "accuracy")] + [
        (modality, kind, str(t.items), str(t.correct), f"{100 * t.accuracy:.1f}%")
        for modality, kind, t in rows
    ]
    widths = [max(len(row[column]) for row in cells) for column in range(5)]
    lines = [
        "  ".join(
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    return "\n".join(lines)
