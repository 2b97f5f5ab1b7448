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

Reading and scoring are torch-free; only :func:`run_records` needs a loaded model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.errors import AnymodalError, UsageError
from anymodal.files import atomic_file
from anymodal.suggest import did_you_mean
from anymodal.train.data import DataReport, Problem, Record, load_entries, read_records

if TYPE_CHECKING:
    from anymodal.chat import ChatSession

__all__ = [
    "DATA_FILE_NAMES",
    "EXACT_KIND",
    "EvalData",
    "EvalItem",
    "EvalRecord",
    "EvalRun",
    "ScoredItem",
    "Summary",
    "Tally",
    "exact_match",
    "find_data_file",
    "format_table",
    "judge_reply",
    "load_eval_data",
    "normalise_answer",
    "report_dict",
    "run_records",
    "summarise",
    "write_json",
]

#: What a data directory is searched for, in order.
DATA_FILE_NAMES = ("conversations.jsonl", "conversations.json")
EXACT_KIND = "exact"
CHECKED_KIND = "checks"
TEXT_MODALITY = "text"
META_KEY = "meta"
_WORD = re.compile(r"[a-z]+")

Checks = Mapping[str, Mapping[str, Sequence[str]]]


# --- scoring ------------------------------------------------------------------------------------


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
    return _WORD.findall(text.lower())


def normalise_answer(text: str) -> str:
    """Lowercase, whitespace collapsed to single spaces, stripped, one trailing "." removed."""
    return " ".join(text.lower().split()).removesuffix(".").rstrip()


def exact_match(reply: str, reference: str) -> bool:
    """Whether ``reply`` and ``reference`` are equal after :func:`normalise_answer`."""
    return normalise_answer(reply) == normalise_answer(reference)


# --- reading the data ---------------------------------------------------------------------------


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
        elif not all(isinstance(word, str) and _WORD.fullmatch(word.lower()) for word in words):
            problems.append(f"'{where}.{key}' holds something that is not a single word of letters a-z")


def _placeholder_stripper(placeholders: Iterable[str]) -> Callable[[str], str]:
    """Removes every placeholder and the whitespace around it: ``"<image>\\nWhat is it?"`` -> ``"What is
    it?"``; the inputs go before the question instead."""
    texts = sorted((text for text in placeholders if text), key=len, reverse=True)
    if not texts:
        return str.strip
    pattern = re.compile(r"\s*(?:" + "|".join(map(re.escape, texts)) + r")\s*")
    return lambda text: pattern.sub(" ", text).strip()


# --- running ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredItem:
    """An item of a record with the model's reply and whether it was right."""

    record: EvalRecord
    item: EvalItem
    reply: str
    correct: bool

    def outcome(self) -> tuple[str, str, bool]:
        """``(modality, kind, correct)``, what :func:`summarise` counts."""
        return self.record.modality, self.item.kind, self.correct

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.record.id,
            "turn": self.item.turn,
            "modality": self.record.modality,
            "kind": self.item.kind,
            "question": self.item.question,
            "reply": self.reply,
            "reference": self.item.reference,
            "correct": self.correct,
        }


@dataclass
class EvalRun:
    """Every scored item, and the records whose media failed to load (source, error), not scored."""

    scored: list[ScoredItem] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def run_records(
    session: ChatSession,
    records: Sequence[EvalRecord],
    progress: Callable[[int, int], None] | None = None,
) -> EvalRun:
    """Ask the model about every item: a fresh conversation per item, with the record's media.

    A record's files are decoded and encoded once for all its items (a session per record, sharing
    ``session``'s model, processor and generation settings, keeps the cache of encodings to the
    record, so it does not grow with the dataset). ``progress(done, total)`` follows each item. A
    record whose media fail to load (a corrupt file) is listed in ``failed`` and skipped.
    """
    from anymodal.chat import ChatSession

    total = sum(len(record.items) for record in records)
    run, done = EvalRun(), 0
    for record in records:
        per_record = ChatSession(session.model, session.processor, session.generation, session.system_prompt)
        try:
            prepared = [per_record.model.prepare(modality, path) for modality, path in record.media]
            for inputs in prepared:
                _ = inputs.key  # hash now, as the file is when it was read
        except AnymodalError as error:
            run.failed.append((record.source, str(error)))
            done += len(record.items)
            continue
        for item in record.items:
            per_record.reset()
            per_record.pending.extend(prepared)
            reply = "".join(per_record.ask(item.question))
            run.scored.append(ScoredItem(record, item, reply, item.score(reply)))
            done += 1
            if progress is not None:
                progress(done, total)
    return run


# --- counting and reporting ---------------------------------------------------------------------


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


def report_dict(model: str, data: EvalData, run: EvalRun) -> dict[str, Any]:
    """The JSON form of a run: counts, per modality and kind, and every item with its reply."""
    summary = summarise(item.outcome() for item in run.scored)
    return {
        "model": model,
        "data": str(data.file),
        "items": summary.overall.items,
        "skipped_records": data.skipped + len(run.failed),
        "overall": summary.overall.to_dict(),
        "by_modality": {modality: tally.to_dict() for modality, tally in summary.by_modality.items()},
        "by_kind": {
            modality: {kind: tally.to_dict() for kind, tally in kinds.items()}
            for modality, kinds in summary.by_kind.items()
        },
        "items_detail": [item.to_dict() for item in run.scored],
    }


def write_json(path: str | Path, value: Any) -> Path:
    """Write ``value`` as JSON to ``path`` atomically (a temporary file beside it, then a rename)."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"output {target} is a directory", hint="pass a file path with --output")
    with atomic_file(target) as temporary:
        temporary.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target
