"""``anymodal data check FILE``: the trainer's validation of a data file alone, and its statistics.

Validation is :func:`anymodal.train.data.read_records`, unchanged, so a file that passes here passes
``anymodal train`` (with the same modalities and media root). No model is loaded and no media file is
opened: the check is whether each one exists, as the trainer's is.

The statistics answer "is this data sane?" at a glance: how many conversations, how long they are
(assistant turns, words per message), which inputs they carry and how many per record, and, for
generated data, how many of each kind (``meta.kind``, written by ``anymodal data generate``). They
count valid records only: those are what training would see.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymodal.contract.specs import Role
from anymodal.contract.wording import plural
from anymodal.train.data import DataReport, Record, read_records
from anymodal.train.data_file import load_entries

__all__ = ["DataStatistics", "ModalityCount", "Spread", "data_statistics", "format_statistics"]

META_KEY = "meta"
KIND_KEY = "kind"


@dataclass(frozen=True)
class Spread:
    """How a count is spread over ``count`` values: their min, median, mean and max; all 0 when
    ``count`` is 0."""

    count: int
    min: int
    median: float
    mean: float
    max: int

    @classmethod
    def of(cls, values: Sequence[int]) -> Spread:
        if not values:
            return cls(count=0, min=0, median=0.0, mean=0.0, max=0)
        return cls(
            count=len(values),
            min=min(values),
            median=float(statistics.median(values)),
            mean=statistics.fmean(values),
            max=max(values),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "min": self.min,
            "median": self.median,
            "mean": round(self.mean, 2),
            "max": self.max,
        }


@dataclass(frozen=True)
class ModalityCount:
    """One modality in the valid records: how many records carry it, how many inputs of it in all."""

    records: int
    inputs: int


@dataclass(frozen=True)
class DataStatistics:
    """What :func:`data_statistics` found. ``report`` is the trainer's; everything else counts the
    valid records only.

    turns: assistant turns per record. user_words / assistant_words: words per user / assistant
    message, whitespace-split, placeholders not counted. modalities: in placeholder order, only those
    present. inputs_per_record: number of inputs -> records with that many, ascending. kinds:
    ``meta.kind`` -> records, for records that carry one (empty when none does).
    """

    report: DataReport
    conversations: int
    turns: Spread
    user_words: Spread
    assistant_words: Spread
    modalities: dict[str, ModalityCount]
    inputs_per_record: dict[int, int]
    kinds: dict[str, int]

    @property
    def text_only(self) -> int:
        """Valid records without any input."""
        return self.inputs_per_record.get(0, 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for ``anymodal data check --json``."""
        return {
            "report": self.report.to_dict(),
            "conversations": self.conversations,
            "turns": self.turns.to_dict(),
            "user_words": self.user_words.to_dict(),
            "assistant_words": self.assistant_words.to_dict(),
            "modalities": {
                name: {"records": count.records, "inputs": count.inputs}
                for name, count in self.modalities.items()
            },
            # JSON keys are strings; the numbers stay in ascending order.
            "inputs_per_record": {str(inputs): records for inputs, records in self.inputs_per_record.items()},
            "text_only": self.text_only,
            "kinds": self.kinds,
        }


def data_statistics(
    file: Path, placeholders: Mapping[str, str], media_root: Path | None = None
) -> DataStatistics:
    """Validate ``file`` as the trainer does and count what its valid records hold.

    placeholders: installed modality -> its placeholder text, e.g. ``{"image": "<image>"}``.
    media_root: what media paths are relative to; default the file's directory.
    Raises the trainer's InputError, unchanged, when the file cannot be used at all (missing, empty,
    not JSON, no records).
    """
    entries = load_entries(file)  # read once: the raw values carry meta.kind, which Record drops
    records, report = read_records(file, placeholders=placeholders, media_root=media_root, entries=entries)
    raw = dict(entries)
    words = _word_counter(placeholders.values())
    inputs = [Counter(ref.modality for ref in record.media) for record in records]
    return DataStatistics(
        report=report,
        conversations=len(records),
        turns=Spread.of([_count_role(record, "assistant") for record in records]),
        user_words=Spread.of(_words_of(records, "user", words)),
        assistant_words=Spread.of(_words_of(records, "assistant", words)),
        modalities=_modality_counts(placeholders, inputs),
        inputs_per_record=dict(sorted(Counter(len(record.media) for record in records).items())),
        kinds=dict(Counter(filter(None, (_kind(raw[record.source]) for record in records)))),
    )


def format_statistics(stats: DataStatistics) -> str:
    """The report's summary line (problems first), then a few aligned lines of counts and a table of
    lengths; a file with no valid record gets only the summary and a line saying so."""
    lines = [stats.report.summary()]
    if not stats.conversations:
        return "\n".join([*lines, "no valid record, so nothing to count"])
    rows: list[tuple[str, str]] = [("conversations", str(stats.conversations))]
    rows += [
        (name, f"{plural(count.records, 'record')}, {plural(count.inputs, 'input')}")
        for name, count in stats.modalities.items()
    ]
    if stats.text_only:
        rows.append(("text only", plural(stats.text_only, "record")))
    per_record = (
        f"{inputs}: {plural(records, 'record')}" for inputs, records in stats.inputs_per_record.items()
    )
    rows.append(("inputs per record", ", ".join(per_record)))
    if stats.kinds:
        rows.append(("kinds", ", ".join(f"{kind} {count}" for kind, count in stats.kinds.items())))
    spreads = [
        ("assistant turns", stats.turns),
        ("user words", stats.user_words),
        ("assistant words", stats.assistant_words),
    ]
    width = max(len(label) for label, _ in [*rows, *spreads]) + 2
    lines += [f"{label:<{width}}{value}" for label, value in rows]
    lines += _spread_table(spreads, width)
    return "\n".join(lines)


# --- counting -----------------------------------------------------------------------------------


def _count_role(record: Record, role: Role) -> int:
    return sum(1 for message in record.messages if message.role == role)


def _words_of(records: Sequence[Record], role: Role, words: Callable[[str], int]) -> list[int]:
    return [words(m.content) for record in records for m in record.messages if m.role == role]


def _word_counter(placeholders: Iterable[str]) -> Callable[[str], int]:
    """Counts the whitespace-separated words of a message, its placeholders not counted: they are
    inputs, not words, and may touch a word (``"<image>What"`` is one word)."""
    # Longest first, so a placeholder inside another is not matched on its own.
    texts = sorted((text for text in placeholders if text), key=len, reverse=True)
    if not texts:
        return lambda text: len(text.split())
    pattern = re.compile("|".join(map(re.escape, texts)))
    return lambda text: len(pattern.sub(" ", text).split())


def _modality_counts(names: Iterable[str], inputs: Sequence[Counter[str]]) -> dict[str, ModalityCount]:
    """``names`` in order, those that some record has: records with it, inputs of it."""
    counts = {
        name: ModalityCount(records=sum(1 for c in inputs if c[name]), inputs=sum(c[name] for c in inputs))
        for name in names
    }
    return {name: count for name, count in counts.items() if count.records}


def _kind(raw: object) -> str | None:
    """``meta.kind`` of a raw record when it is a non-empty string, else None."""
    meta = raw.get(META_KEY) if isinstance(raw, dict) else None
    kind = meta.get(KIND_KEY) if isinstance(meta, dict) else None
    return kind if isinstance(kind, str) and kind else None


# --- formatting ---------------------------------------------------------------------------------


def _spread_table(spreads: Sequence[tuple[str, Spread]], width: int) -> list[str]:
    """A header and one row per spread, each column right-aligned to its widest cell; "-" for the
    values of an empty spread."""
    header = ("", "count", "min", "median", "mean", "max")
    rows = [header] + [
        (label, str(s.count), *(("-",) * 4 if not s.count else _cells(s))) for label, s in spreads
    ]
    columns = [max(len(row[index]) for row in rows) for index in range(1, len(header))]
    return [
        f"{row[0]:<{width}}" + "  ".join(cell.rjust(w) for cell, w in zip(row[1:], columns, strict=True))
        for row in rows
    ]


def _cells(spread: Spread) -> tuple[str, str, str, str]:
    return (str(spread.min), f"{spread.median:g}", f"{spread.mean:.1f}", str(spread.max))
