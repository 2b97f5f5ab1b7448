"""Instruction data for ``anymodal train``: read LLaVA / PandaGPT style records and validate them up front.

Why up front: a missing image or a mislabelled turn found at step 40,000 costs a run; found before the
first step it costs a second. Every record is checked once, every problem is collected (not just the
first), and the caller decides with ``check_report`` whether problems fail the run or only skip records.

Torch-free on purpose, so that checking a data file is cheap and needs no model.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymodal.contract.errors import UsageError
from anymodal.contract.specs import Message, Role
from anymodal.contract.wording import did_you_mean, plural
from anymodal.train.data_file import json_type, load_entries

__all__ = [
    "ON_INVALID_CHOICES",
    "PROBLEM_KINDS",
    "DataReport",
    "MediaRef",
    "Problem",
    "Record",
    "check_report",
    "read_records",
]

PROBLEM_KINDS = (
    "malformed",
    "empty turn",
    "no answer",
    "missing file",
    "unknown modality",
    "placeholder without media",
    "media without placeholder",
)
ON_INVALID_CHOICES = ("fail", "skip")

#: LLaVA and PandaGPT speaker names -> chat roles.
ROLES: dict[str, Role] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
CONVERSATION_KEYS = ("conversations", "conversation")
#: PandaGPT names its image ``image_name`` and puts no placeholder in the text: read as the image field.
PANDAGPT_MEDIA_KEY = "image_name"
PANDAGPT_MODALITY = "image"
NON_MEDIA_KEYS = frozenset({"id", *CONVERSATION_KEYS})


@dataclass(frozen=True)
class MediaRef:
    """One input of a record: which user message it belongs to, its modality and its absolute path."""

    message: int
    modality: str
    path: Path


@dataclass(frozen=True)
class Record:
    """A valid record. ``media`` is in conversation order: by message, then by placeholder position,
    so the k-th placeholder of a modality in a message is the k-th ``MediaRef`` of it there."""

    source: str
    messages: tuple[Message, ...]
    media: tuple[MediaRef, ...]


@dataclass
class Problem:
    """One reason a record is invalid; ``source`` is ``file:line`` (JSONL) or ``file[index]`` (JSON)."""

    kind: str
    source: str
    detail: str


@dataclass
class DataReport:
    """What validating a data file found, in a form fit for a log line and for a file beside a run."""

    file: Path
    total: int
    valid: int
    problems: list[Problem]

    def counts(self) -> dict[str, int]:
        """Problem kind -> count, in ``PROBLEM_KINDS`` order, only kinds that occur."""
        found = Counter(problem.kind for problem in self.problems)
        return {kind: found[kind] for kind in PROBLEM_KINDS if found[kind]}

    def summary(self, examples: int = 3) -> str:
        """One line: totals, then each problem kind with its count and a few examples to go and fix."""
        head = f"{self.file.name}: {plural(self.total, 'record')}"
        if not self.problems:
            return f"{head}, all valid"
        parts = []
        for kind, count in self.counts().items():
            shown = [p for p in self.problems if p.kind == kind][:examples]
            listed = "; ".join(f"{p.source}: {p.detail}" for p in shown)
            parts.append(f"{kind} {count} (e.g. {listed})" if shown else f"{kind} {count}")
        return f"{head}, {self.valid} valid, {self.total - self.valid} invalid: {', '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, written beside a run so a skipped record can be traced later."""
        return {
            "file": str(self.file),
            "total": self.total,
            "valid": self.valid,
            "invalid": self.total - self.valid,
            "counts": self.counts(),
            "problems": [{"kind": p.kind, "source": p.source, "detail": p.detail} for p in self.problems],
        }


def read_records(
    file: str | Path,
    *,
    placeholders: Mapping[str, str],
    media_root: str | Path | None = None,
    ignore_keys: Collection[str] = (),
    entries: Sequence[tuple[str, object]] | None = None,
) -> tuple[list[Record], DataReport]:
    """Read and validate every record; invalid ones are reported in the DataReport, not returned.

    placeholders: enabled modality name -> its placeholder text, e.g. ``{"image": "<image>"}``.
    media_root: what media paths are relative to; default the data file's directory.
    ignore_keys: extra record keys that are metadata, not media fields.
    entries: ``file``'s records as :func:`load_entries` already read them, for a caller that also
    needs the raw values (they are read from ``file`` when None).
    A PandaGPT record's ``image_name`` images get an image placeholder each at the start of its first
    user message, so every record keeps one rule: each MediaRef has its placeholder in the text.
    Raises InputError when the file itself cannot be used (missing, empty, not JSON, no records).
    """
    path = Path(file)
    context = _make_context(placeholders, path.parent if media_root is None else media_root, ignore_keys)
    records: list[Record] = []
    problems: list[Problem] = []
    entries = load_entries(path) if entries is None else entries
    for source, raw in entries:
        record, found = _check_record(raw, source, context)
        problems.extend(found)
        if record is not None:
            records.append(record)
    return records, DataReport(file=path, total=len(entries), valid=len(records), problems=problems)


def check_report(report: DataReport, on_invalid: str) -> None:
    """Apply the ``on_invalid`` policy: "fail" raises UsageError on any problem, "skip" returns.

    Even "skip" raises when no record is valid: there would be nothing to train on.
    """
    if on_invalid not in ON_INVALID_CHOICES:
        raise UsageError(
            f"on_invalid must be one of {', '.join(ON_INVALID_CHOICES)}, not {on_invalid!r}"
            + did_you_mean(on_invalid, ON_INVALID_CHOICES)
        )
    if report.problems and report.valid == 0:
        raise UsageError(report.summary(), hint="no record is valid, so there is nothing to train on")
    if report.problems and on_invalid == "fail":
        hint = f'fix the records listed, or set on_invalid: "skip" to train on the {report.valid} valid ones'
        raise UsageError(report.summary(), hint=hint)


# --- checking one record ------------------------------------------------------------------------

Report = Callable[[str, str], None]


@dataclass(frozen=True)
class _Context:
    """What every record check needs, computed once per file."""

    placeholders: Mapping[str, str]
    root: str
    non_media_keys: frozenset[str]
    modality_of: Mapping[str, str]  # placeholder text -> modality
    pattern: re.Pattern[str] | None  # any placeholder, longest first so one inside another is not counted

    def absolute(self, written: str) -> str:
        return os.path.abspath(os.path.join(self.root, written))


def _make_context(
    placeholders: Mapping[str, str], root: str | Path, ignore_keys: Collection[str]
) -> _Context:
    modality_of = {text: modality for modality, text in placeholders.items() if text}
    longest_first = sorted(modality_of, key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, longest_first))) if longest_first else None
    keys = NON_MEDIA_KEYS | frozenset(ignore_keys)
    return _Context(dict(placeholders), os.path.abspath(root), keys, modality_of, pattern)


def _check_record(raw: object, source: str, context: _Context) -> tuple[Record | None, list[Problem]]:
    problems: list[Problem] = []

    def report(kind: str, detail: str) -> None:
        problems.append(Problem(kind, source, detail))

    if not isinstance(raw, dict):
        report("malformed", f"record is {json_type(raw)}, not an object")
        return None, problems
    messages = _read_conversation(raw, report)
    media, broken = _read_media_fields(raw, context, report)
    for modality, paths in media.items():
        for written in paths:
            if not os.path.isfile(context.absolute(written)):
                under = "" if os.path.isabs(written) else f" under {context.root}"
                report("missing file", f"{modality} file {written} not found{under}")
    if messages is None:
        return None, problems
    if PANDAGPT_MEDIA_KEY in raw.keys() - context.non_media_keys and PANDAGPT_MODALITY in media:
        messages = _insert_pandagpt_placeholders(messages, len(media[PANDAGPT_MODALITY]), context)
    refs = _attach_media(messages, media, broken, context, report)
    if problems:
        return None, problems
    return Record(source=source, messages=tuple(messages), media=tuple(refs)), problems


def _read_conversation(raw: dict[str, Any], report: Report) -> list[Message] | None:
    """The turns as Messages, or None when the conversation is too broken to check further."""
    keys = [key for key in CONVERSATION_KEYS if key in raw]
    if len(keys) != 1:
        detail = "has both 'conversations' and 'conversation'" if keys else "no 'conversations' list"
        report("malformed", detail)
        return None
    turns = raw[keys[0]]
    if not isinstance(turns, list):
        report("malformed", f"'{keys[0]}' is {json_type(turns)}, not a list")
        return None
    messages: list[Message] = []
    for index, turn in enumerate(turns):
        message = _read_turn(turn, f"{keys[0]}[{index}]", report)
        if message is not None:
            messages.append(message)
    if len(messages) < len(turns):
        return None
    if not any(message.role == "assistant" for message in messages):
        report("no answer", f"'{keys[0]}' has no gpt/assistant turn")
    return messages


def _read_turn(turn: object, where: str, report: Report) -> Message | None:
    if not isinstance(turn, dict):
        report("malformed", f"{where} is {json_type(turn)}, not an object")
        return None
    speaker, text = turn.get("from"), turn.get("value")
    if not isinstance(speaker, str) or not isinstance(text, str):
        missing = " or ".join(repr(name) for name in ("from", "value") if not isinstance(turn.get(name), str))
        report("malformed", f"{where} has no string {missing}")
        return None
    if speaker not in ROLES:
        expected = f"(expected {', '.join(ROLES)}){did_you_mean(speaker, ROLES)}"
        report("malformed", f"{where} has unknown role {speaker!r} {expected}")
        return None
    if not text.strip():
        report("empty turn", f"{where} ({speaker}) is empty")
    return Message(role=ROLES[speaker], content=text)


def _read_media_fields(
    raw: dict[str, Any], context: _Context, report: Report
) -> tuple[dict[str, list[str]], set[str]]:
    """Enabled modality -> paths as written, and the modalities whose field is too broken to count.

    Any other key holding paths is reported as an unknown modality, not guessed at.
    """
    media: dict[str, list[str]] = {}
    broken: set[str] = set()
    for key, value in raw.items():
        if key in context.non_media_keys or not isinstance(value, str | list):
            continue
        pandagpt = key == PANDAGPT_MEDIA_KEY
        paths = [value] if isinstance(value, str) else value
        modality = PANDAGPT_MODALITY if pandagpt else key
        if modality not in context.placeholders:
            if paths and all(isinstance(path, str) for path in paths):
                field = f"field {key!r} needs modality {modality!r}, which" if pandagpt else f"field {key!r}"
                enabled = ", ".join(context.placeholders) or "none"
                suggestion = "" if pandagpt else did_you_mean(key, context.placeholders)
                detail = f"{field} is not an enabled modality (enabled: {enabled}){suggestion}"
                report("unknown modality", detail)
        elif modality in media or modality in broken:
            report("malformed", f"has both {PANDAGPT_MODALITY!r} and {PANDAGPT_MEDIA_KEY!r}")
            broken.add(modality)
        elif not paths:
            report("malformed", f"field {key!r} is an empty list")
            broken.add(modality)
        elif not all(isinstance(path, str) and path.strip() for path in paths):
            report("malformed", f"field {key!r} holds something that is not a path string")
            broken.add(modality)
        else:
            media[modality] = paths
    return media, broken


def _insert_pandagpt_placeholders(messages: list[Message], count: int, context: _Context) -> list[Message]:
    """PandaGPT writes no placeholder; put one per image at the start of the first user message.

    That keeps one rule for every record downstream: each MediaRef has its placeholder in the text.
    """
    if any(PANDAGPT_MODALITY in _placeholders_in(message, context) for message in messages):
        return messages
    first_user = next((index for index, message in enumerate(messages) if message.role == "user"), None)
    if first_user is None:
        return messages  # nowhere to attach: reported as media without placeholder
    prefix = f"{context.placeholders[PANDAGPT_MODALITY]}\n" * count
    changed = list(messages)
    changed[first_user] = Message(role="user", content=prefix + messages[first_user].content)
    return changed


def _attach_media(
    messages: list[Message],
    media: Mapping[str, list[str]],
    broken: set[str],
    context: _Context,
    report: Report,
) -> list[MediaRef]:
    """Pair each modality's placeholders with its paths in conversation order; report count mismatches.

    Modalities whose field is broken are not counted: their malformed problem already says enough.
    """
    found = [
        (index, modality) for index, m in enumerate(messages) for modality in _placeholders_in(m, context)
    ]
    mentions = Counter(modality for _, modality in found)
    matched = not broken
    for modality in [m for m in context.placeholders if (m in media or mentions[m]) and m not in broken]:
        placeholders, paths = mentions[modality], len(media.get(modality, ()))
        said = f"{plural(placeholders, repr(context.placeholders[modality]) + ' placeholder')} in user turns"
        given = plural(paths, f"{modality} path") if modality in media else f"no {modality!r} field"
        if placeholders > paths:
            report("placeholder without media", f"{said} but {given}")
        elif placeholders < paths:
            report("media without placeholder", f"{given} but {said}")
        matched = matched and placeholders == paths
    if not matched:
        return []
    unused = {modality: iter(paths) for modality, paths in media.items()}
    return [
        MediaRef(index, modality, Path(context.absolute(next(unused[modality])))) for index, modality in found
    ]


def _placeholders_in(message: Message, context: _Context) -> list[str]:
    """Modalities whose placeholders a user message holds, in text order; other roles hold plain text."""
    if message.role != "user" or context.pattern is None:
        return []
    return [context.modality_of[match.group()] for match in context.pattern.finditer(message.content)]
