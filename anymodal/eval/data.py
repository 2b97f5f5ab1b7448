"""Accuracy of a model on conversations: one item per assistant turn, scored, counted, tabulated.

Data is the trainer's LLaVA-style JSON/JSONL, read and validated by
:func:`anymodal.train.data.read_records`, plus an optional ``meta`` object per record:

* ``meta.modality``: the label the record is counted under; by default the modalities of its
  media joined with ``+`` (``"image+audio"``), or ``"text"`` when it has none.
* ``meta.turns``: one entry per assistant message, ``{"kind": ..., "checks": {attribute:
  {"expect": [words], "reject": [words]}}}``; a turn with checks is scored by :func:`judge_reply`.
  Turns without checks (and every turn of a record without ``meta.turns``) are scored by
  :func:`exact_match` against the reference answer, under kind ``"exact"`` unless one is given
  (``"checks"`` for a turn with checks but no kind).

Each item is asked on its own: a fresh conversation with the record's media attached and the turn's
question (the user messages since the previous answer) with its placeholders removed, so one wrong
answer cannot leak into the next question. A record's system messages are not sent; the model's
configured system prompt is. A record whose ``meta`` is malformed is skipped like any invalid one.

Reading is torch-free; scoring is :mod:`anymodal.eval.scoring`'s, running :mod:`anymodal.eval.run`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymodal.contract.errors import UsageError
from anymodal.contract.wording import did_you_mean
from anymodal.eval.scoring import WORD, Checks, exact_match, judge_reply
from anymodal.train.data import DataReport, Problem, Record, read_records
from anymodal.train.data_file import load_entries

#: What a data directory is searched for, in order.
DATA_FILE_NAMES = ("conversations.jsonl", "conversations.json")
EXACT_KIND = "exact"
CHECKED_KIND = "checks"
TEXT_MODALITY = "text"
META_KEY = "meta"


@dataclass(frozen=True)
class EvalItem:
    """One assistant turn to ask about: the question sent, the reference answer, how it is scored."""

    turn: int
    kind: str
    question: str
    reference: str
    checks: Checks | None = None

    def score(self, reply: str) -> bool:
        if self.checks is not None:
            return judge_reply(reply, self.checks)
        return exact_match(reply, self.reference)


@dataclass(frozen=True)
class EvalRecord:
    """A valid record: its id (the ``id`` field, else where it is in the file), label and media."""

    id: str
    source: str
    modality: str
    media: tuple[tuple[str, Path], ...]
    items: tuple[EvalItem, ...]


@dataclass
class EvalData:
    """The records to evaluate and the validation report (its invalid records are skipped)."""

    file: Path
    records: list[EvalRecord]
    report: DataReport

    @property
    def skipped(self) -> int:
        return self.report.total - self.report.valid

    def modalities(self) -> list[str]:
        """Record labels in first-appearance order."""
        return list(dict.fromkeys(record.modality for record in self.records))

    def select(self, modalities: Sequence[str] = (), limit: int | None = None) -> list[EvalRecord]:
        """The records of ``modalities`` (all when empty), the first ``limit`` of them."""
        known = self.modalities()
        for name in modalities:
            if name not in known:
                raise UsageError(
                    f"no record in {self.file} has modality {name!r}{did_you_mean(name, known)}",
                    hint=f"modalities there: {', '.join(known)}",
                )
        chosen = [r for r in self.records if not modalities or r.modality in modalities]
        return chosen if limit is None else chosen[:limit]


def find_data_file(path: str | Path) -> Path:
    """``path`` itself when it is a file, else the first of :data:`DATA_FILE_NAMES` inside it."""
    given = Path(path).expanduser()
    if not given.exists():
        raise UsageError(f"data {given} not found", hint="pass a directory or .jsonl/.json file")
    if given.is_file():
        return given
    for name in DATA_FILE_NAMES:
        if (given / name).is_file():
            return given / name
    looked_for = " or ".join(DATA_FILE_NAMES)
    raise UsageError(
        f"data directory {given} has no {looked_for}",
        hint="pass the conversations file itself with --data FILE",
    )


def load_eval_data(file: str | Path, placeholders: Mapping[str, str]) -> EvalData:
    """Read ``file``, validate every record and its ``meta``; media paths are relative to the file.

    placeholders: enabled modality -> placeholder text, as for :func:`read_records`. Records with
    problems are left out and listed in the report. Raises UsageError when no record is valid.
    """
    path = Path(file)
    # Record keeps neither id nor meta: take them from the very (source, value) pairs read_records checks.
    entries = load_entries(path)
    records, report = read_records(
        path, placeholders=placeholders, media_root=path.parent, ignore_keys=(META_KEY,), entries=entries
    )
    raw = dict(entries)
    strip = _placeholder_stripper(placeholders.values())
    chosen: list[EvalRecord] = []
    for record in records:
        problems: list[str] = []
        entry = raw[record.source]
        assert isinstance(entry, dict)  # read_records only returns objects
        built = _eval_record(record, entry, strip, problems)
        report.problems.extend(Problem("malformed", record.source, detail) for detail in problems)
        if built is not None:
            chosen.append(built)
    report.valid = len(chosen)
    if not chosen:
        raise UsageError(report.summary(), hint="no record is valid, so there is nothing to evaluate")
    return EvalData(path, chosen, report)


def _eval_record(
    record: Record, raw: Mapping[str, Any], strip: Callable[[str], str], problems: list[str]
) -> EvalRecord | None:
    meta = raw.get(META_KEY, {})
    if not isinstance(meta, dict):
        problems.append("'meta' is not an object")
        return None
    media = tuple((ref.modality, ref.path) for ref in record.media)
    modality = meta.get("modality", "+".join(dict.fromkeys(m for m, _ in media)) or TEXT_MODALITY)
    if not isinstance(modality, str) or not modality.strip():
        problems.append("'meta.modality' is not a non-empty string")
    asked: list[str] = []
    answers: list[tuple[str, str]] = []  # (question, reference) per assistant message
    for message in record.messages:
        if message.role == "user":
            asked.append(strip(message.content))
        elif message.role == "assistant":
            answers.append(("\n".join(part for part in asked if part), message.content))
            asked = []
    turns = _read_turns(meta.get("turns"), len(answers), problems)
    if problems or turns is None:
        return None
    items = tuple(
        EvalItem(index, kind, question, reference, checks)
        for index, ((question, reference), (kind, checks)) in enumerate(zip(answers, turns, strict=True))
    )
    record_id = raw.get("id")
    return EvalRecord(
        id=record.source if record_id is None else str(record_id),
        source=record.source,
        modality=modality,
        media=media,
        items=items,
    )


def _read_turns(turns: object, answers: int, problems: list[str]) -> list[tuple[str, Checks | None]] | None:
    """(kind, checks) per assistant message; None (with problems added) when ``meta.turns`` is bad."""
    if turns is None:
        return [(EXACT_KIND, None)] * answers
    if not isinstance(turns, list):
        problems.append("'meta.turns' is not a list")
        return None
    if len(turns) != answers:
        problems.append(f"'meta.turns' has {len(turns)} entries for {answers} assistant turns")
        return None
    read = [_read_turn(turn, f"meta.turns[{index}]", problems) for index, turn in enumerate(turns)]
    return None if problems else [turn for turn in read if turn is not None]


def _read_turn(turn: object, where: str, problems: list[str]) -> tuple[str, Checks | None] | None:
    if not isinstance(turn, dict):
        problems.append(f"'{where}' is not an object")
        return None
    checks = turn.get("checks")
    kind = turn.get("kind", EXACT_KIND if checks is None else CHECKED_KIND)
    if not isinstance(kind, str) or not kind.strip():
        problems.append(f"'{where}.kind' is not a non-empty string")
    if checks is None:
        return kind, None
    if not isinstance(checks, dict) or not checks:
        problems.append(f"'{where}.checks' is not a non-empty object")
        return None
    for attribute, check in checks.items():
        _check_words(check, f"{where}.checks.{attribute}", problems)
    return kind, checks


def _check_words(check: object, where: str, problems: list[str]) -> None:
    """An attribute's check: a non-empty ``expect`` list and an optional ``reject`` list, of words
    that :func:`judge_reply` can find (letters only), so no item is wrong for a reason in the data."""
    if not isinstance(check, dict) or set(check) - {"expect", "reject"}:
        problems.append(f"'{where}' must be an object with 'expect' and optionally 'reject'")
        return
    for key in ("expect", "reject"):
        words = check.get(key, [])
        if not isinstance(words, list) or (key == "expect" and not words):
            problems.append(f"'{where}.{key}' is not a {'non-empty ' if key == 'expect' else ''}list")
        elif not all(isinstance(word, str) and WORD.fullmatch(word.lower()) for word in words):
            problems.append(f"'{where}.{key}' holds something that is not a single word of letters a-z")


def _placeholder_stripper(placeholders: Iterable[str]) -> Callable[[str], str]:
    """Removes every placeholder and the whitespace around it: ``"<image>\\nWhat is it?"`` -> ``"What is
    it?"``; the inputs go before the question instead."""
    texts = sorted((text for text in placeholders if text), key=len, reverse=True)
    if not texts:
        return str.strip
    pattern = re.compile(r"\s*(?:" + "|".join(map(re.escape, texts)) + r")\s*")
    return lambda text: pattern.sub(" ", text).strip()
