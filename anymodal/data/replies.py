"""A teacher's reply read into conversation turns, and the checks every reply must pass before it
becomes training data: not empty, not cut short, in the kind's form, with its placeholders, and not
a near-copy of a reply already kept."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Why a reply is not kept, in the order a summary lists them.
REJECTIONS = ("empty", "truncated", "unparseable", "placeholders", "invalid", "near-duplicate")

_SEPARATOR = re.compile(r"^\s*===+\s*$", re.MULTILINE)
_LABEL = re.compile(r"^\s*(question|answer)\s*:\s*", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9']+")


class Rejected(Exception):
    """A reply not kept: ``reason`` is one of :data:`REJECTIONS`, ``detail`` says what was wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def question_answers(reply: str) -> list[tuple[str, str]]:
    """The ``(question, answer)`` pairs of a reply in LLaVA's form: blocks separated by ``===``
    lines, each starting ``Question:`` or ``Answer:`` (any case, the text on that line or the
    next), alternating from a question. A reply in any other form is :class:`Rejected`."""
    blocks = [block.strip() for block in _SEPARATOR.split(reply) if block.strip()]
    labelled = []
    for number, block in enumerate(blocks, 1):
        found = _LABEL.match(block)
        if found is None:
            raise Rejected("unparseable", f"block {number} starts with neither 'Question:' nor 'Answer:'")
        text = block[found.end() :].strip()
        if not text:
            raise Rejected("unparseable", f"block {number} ({found.group(1)}) is empty")
        labelled.append((found.group(1).lower(), text))
    if not labelled:
        raise Rejected("unparseable", "no 'Question:'/'Answer:' blocks")
    expected = ["question", "answer"] * ((len(labelled) + 1) // 2)
    roles = [role for role, _ in labelled]
    if roles != expected[: len(roles)] or len(roles) % 2:
        where = next(
            (i for i, (a, b) in enumerate(zip(roles, expected, strict=False)) if a != b), len(roles) - 1
        )
        raise Rejected(
            "unparseable", f"the questions and answers do not alternate from a question (block {where + 1})"
        )
    return [(labelled[i][1], labelled[i + 1][1]) for i in range(0, len(labelled), 2)]


def check_finished(text: str, finish_reason: str | None) -> str:
    """The reply's text, stripped, unless it is empty or the teacher stopped at its token limit."""
    if finish_reason == "length":
        raise Rejected("truncated", "the teacher stopped at max_tokens; raise teacher.max_tokens")
    stripped = text.strip()
    if not stripped:
        raise Rejected("empty", "the reply is empty")
    return stripped


def check_placeholders(
    texts: Sequence[str], wanted: Sequence[str], known: Iterable[str], where: str = "questions"
) -> None:
    """The texts hold each placeholder of ``known`` (every installed modality's) as many times as
    ``wanted`` (one entry per input of the record) lists it: none where it is not listed."""
    for placeholder in dict.fromkeys([*wanted, *known]):
        said = sum(text.count(placeholder) for text in texts)
        needed = list(wanted).count(placeholder)
        if said != needed:
            raise Rejected(
                "placeholders", f"{placeholder} written {said} times in the {where} for {needed} input(s)"
            )


def shingles(texts: Iterable[str], size: int = 3) -> frozenset[str]:
    """The word ``size``-grams of ``texts`` (lower case, punctuation dropped): what duplicates share."""
    words = [word for text in texts for word in _WORD.findall(text.lower())]
    if len(words) < size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


@dataclass
class NearDuplicates:
    """The replies kept so far, by kind, to find a new one that overlaps one of them by at least
    ``threshold`` (Jaccard similarity of their word trigrams). Only replies sharing a trigram with
    the new one are compared, through an index from trigram to reply."""

    threshold: float

    def __post_init__(self) -> None:
        self._kept: dict[str, list[tuple[str, frozenset[str]]]] = defaultdict(list)
        self._index: dict[tuple[str, str], list[int]] = defaultdict(list)

    def similar(self, kind: str, grams: frozenset[str]) -> str | None:
        """The id of a kept reply of ``kind`` this one nearly copies, or None."""
        if not grams:
            return None
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for number in self._index[kind, gram]:
                shared[number] += 1
        for number, common in shared.items():
            kept_id, kept = self._kept[kind][number]
            if common / (len(grams) + len(kept) - common) >= self.threshold:
                return kept_id
        return None

    def keep(self, kind: str, record_id: str, grams: frozenset[str]) -> None:
        number = len(self._kept[kind])
        self._kept[kind].append((record_id, grams))
        for gram in grams:
            self._index[kind, gram].append(number)
