"""Conversations about two or three inputs at once, composed from files a world already holds.

Each kind asks one question that needs every input, of the same modality or of two:

* ``image+image`` and ``image+image+image`` ``which_colour``: which of two (three) images, of
  different colours, shows the X shape;
* ``image+image`` ``same_shape``: do they show the same shape (half of the pairs do);
* ``image+image`` ``in_context``: the first image's shape (or colour) is given, the second's asked
  the same way: an in-context example and a new input in one message;
* ``video+audio`` ``together``: does the sound rise (fall, ...) while the shape moves up (...);
  true half of the time, and the answer says what each input really does;
* ``depth+thermal`` ``object``: what the depth map and the thermal image say about the object,
  near or far and hot or cold.

The inputs' placeholders come first, each on its own line, in the order the files are attached,
then the question: the way ``anymodal chat`` and ``anymodal eval`` put several files before a
question. Records reuse the world's files (nothing is rendered), so a kind needs its modalities in
the world; ``meta.modality`` is the inputs' label (``image+image``), ``meta.sources`` the records
whose files are used (in order), and ``meta.turns`` the checks that
:func:`anymodal.eval.scoring.judge_reply` scores an answer by. Record ``i`` of a kind is drawn
from its own generator, ``[seed, stream, kind, i]``, so it depends neither on the other kinds nor
on how many records are asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from anymodal.demo.language import checks
from anymodal.demo.vocabulary import ATTRIBUTES, placeholder

#: Second seed word of the multi-input records' generators; the single-input ones use a modality's
#: index (below 6) there, so the streams differ.
MULTI_STREAM = 1000
ORDINALS = ("first", "second", "third")

#: Attributes of the world's files: a record's id, its media path and its attribute classes.
Source = Mapping[str, Any]
Turn = tuple[str, str, dict[str, dict[str, list[str]]]]
T = TypeVar("T")


@dataclass(frozen=True)
class MultiKind:
    """A kind of question about several inputs: their modalities, how to pick their source
    records from the world's (one pool per input), and how to make the turn (question, answer,
    checks) from them."""

    name: str
    modalities: tuple[str, ...]
    pick: Callable[[Sequence[Sequence[Source]], np.random.Generator], list[Source]]
    make: Callable[[Sequence[Source], np.random.Generator], Turn]

    @property
    def label(self) -> str:
        return "+".join(self.modalities)


def _attrs(source: Source) -> Mapping[str, str]:
    attributes: Mapping[str, str] = source["meta"]["attributes"]
    return attributes


def _yes_no(yes: bool) -> dict[str, list[str]]:
    return {"expect": ["yes"], "reject": ["no"]} if yes else {"expect": ["no"], "reject": ["yes"]}


def _one_of(pool: Sequence[T], rng: np.random.Generator) -> T:
    """One of ``pool``, uniformly: a file, a phrasing, a class."""
    return pool[int(rng.integers(len(pool)))]


def _independent(pools: Sequence[Sequence[Source]], rng: np.random.Generator) -> list[Source]:
    return [_one_of(pool, rng) for pool in pools]


def _distinct_colours(pools: Sequence[Sequence[Source]], rng: np.random.Generator) -> list[Source]:
    """One file per pool, no two of the same colour (the world has four)."""
    chosen: list[Source] = []
    for pool in pools:
        used = {_attrs(source)["colour"] for source in chosen}
        chosen.append(_one_of([s for s in pool if _attrs(s)["colour"] not in used] or pool, rng))
    return chosen


def _same_or_not(pools: Sequence[Sequence[Source]], rng: np.random.Generator) -> list[Source]:
    """A second image of the same shape half of the time, of another shape the rest."""
    first = _one_of(pools[0], rng)
    shape, same = _attrs(first)["shape"], rng.random() < 0.5
    others = [s for s in pools[1] if (_attrs(s)["shape"] == shape) == same and s is not first]
    return [first, _one_of(others or pools[1], rng)]


_WHICH_QUESTIONS = {
    2: (
        "Which of the two images shows the {colour} shape, the first or the second?",
        "One of these images has a {colour} shape. Is it the first or the second?",
        "Where is the {colour} shape: in the first image or in the second?",
    ),
    3: (
        "Which of the three images shows the {colour} shape: the first, the second or the third?",
        "One of these three images has a {colour} shape. Which one is it?",
    ),
}


def _which_colour(sources: Sequence[Source], rng: np.random.Generator) -> Turn:
    """Which of the images (of different colours) shows the shape of one of their colours."""
    target = int(rng.integers(len(sources)))
    colours = [_attrs(source)["colour"] for source in sources]
    phrasings = _WHICH_QUESTIONS[len(sources)]
    question = _one_of(phrasings, rng).format(colour=colours[target])
    ordinals = ORDINALS[: len(sources)]
    # The evidence comes before the verdict: each image's colour, read from the images in order,
    # then the one the question names. Answered first, the verdict was at chance (docs/demo.md).
    answer = f"The images are {_listed(colours)}, so it is in the {ordinals[target]} image."
    reject = [ordinal for number, ordinal in enumerate(ordinals) if number != target]
    return question, answer, {"which": {"expect": [ordinals[target]], "reject": reject}}


def _listed(words: Sequence[str]) -> str:
    """Words listed as a sentence lists them: "red and blue", "red, blue and green"."""
    return f"{', '.join(words[:-1])} and {words[-1]}"


_SAME_QUESTIONS = (
    "Do the two images show the same shape?",
    "Is the shape the same in both images?",
    "Are these two shapes of the same kind?",
)


def _same_shape(sources: Sequence[Source], rng: np.random.Generator) -> Turn:
    """The two shapes, then whether they are the same (evidence before the verdict, as above)."""
    question = _one_of(_SAME_QUESTIONS, rng)
    one, two = (_attrs(source)["shape"] for source in sources)
    shapes = f"The first shows a {one} and the second a {two}"
    if one != two:
        return question, f"{shapes}: no, they differ.", {"same": _yes_no(False)}
    shape_check = checks("image", "shape", _attrs(sources[0]))["shape"]
    return question, f"{shapes}: yes, the same shape.", {"same": _yes_no(True), "shape": shape_check}


def _in_context(sources: Sequence[Source], rng: np.random.Generator) -> Turn:
    first, second = sources
    attribute = ("shape", "colour")[int(rng.integers(2))]
    given, asked = _attrs(first)[attribute], _attrs(second)[attribute]
    if attribute == "shape":
        question = f"The first image shows a {given}. What shape does the second image show?"
        answer = f"The second image shows a {asked}."
    else:
        question = f"The shape in the first image is {given}. What colour is the shape in the second?"
        answer = f"In the second image it is {asked}."
    return question, answer, checks("image", attribute, _attrs(second))


#: How a question names a sound's pattern, and how an answer says it.
_PATTERN_ASKED = {"steady": "stay steady", "beeping": "beep", "rising": "rise", "falling": "fall"}
_PATTERN_SAID = {"steady": "stays steady", "beeping": "beeps", "rising": "rises", "falling": "falls"}
_MOTION = {
    "left": "moves to the left",
    "right": "moves to the right",
    "up": "moves up",
    "down": "moves down",
    "still": "stays still",
}


def _together(sources: Sequence[Source], rng: np.random.Generator) -> Turn:
    """Half of the questions name what both really do; the rest change one of the two, or both."""
    video, audio = sources
    pattern, motion = _attrs(audio)["pattern"], _attrs(video)["motion"]
    asked_pattern, asked_motion = pattern, motion
    if rng.random() >= 0.5:
        change = int(rng.integers(3))  # 0: the sound, 1: the motion, 2: both
        if change in (0, 2):
            asked_pattern = _another(ATTRIBUTES["audio"]["pattern"], pattern, rng)
        if change in (1, 2):
            asked_motion = _another(ATTRIBUTES["video"]["motion"], motion, rng)
    question = f"Does the sound {_PATTERN_ASKED[asked_pattern]} while the shape {_MOTION[asked_motion]}?"
    yes = (asked_pattern, asked_motion) == (pattern, motion)
    answer = f"The sound {_PATTERN_SAID[pattern]}, and the shape {_MOTION[motion]}: {'yes' if yes else 'no'}."
    return (
        question,
        answer,
        {
            "together": _yes_no(yes),
            "pattern": checks("audio", "pattern", _attrs(audio))["pattern"],
            "motion": checks("video", "motion", _attrs(video))["motion"],
        },
    )


_OBJECT_QUESTIONS = (
    "What do the depth map and the thermal image say about the object?",
    "Is the object near or far, and is it hot or cold?",
    "From its depth and its heat, describe the object.",
)


def _object(sources: Sequence[Source], rng: np.random.Generator) -> Turn:
    depth, thermal = sources
    question = _one_of(_OBJECT_QUESTIONS, rng)
    distance, temperature = _attrs(depth)["distance"], _attrs(thermal)["temperature"]
    where = "near the camera" if distance == "near" else "far from the camera"
    answer = f"It is {where}, and it is {temperature}."
    return (
        question,
        answer,
        {
            "distance": checks("depth", "distance", _attrs(depth))["distance"],
            "temperature": checks("thermal", "temperature", _attrs(thermal))["temperature"],
        },
    )


def _another(classes: Sequence[str], true: str, rng: np.random.Generator) -> str:
    others = [cls for cls in classes if cls != true]
    return _one_of(others, rng)


MULTI_KINDS: tuple[MultiKind, ...] = (
    MultiKind("which_colour", ("image", "image"), _distinct_colours, _which_colour),
    MultiKind("which_colour", ("image", "image", "image"), _distinct_colours, _which_colour),
    MultiKind("same_shape", ("image", "image"), _same_or_not, _same_shape),
    MultiKind("in_context", ("image", "image"), _independent, _in_context),
    MultiKind("together", ("video", "audio"), _independent, _together),
    MultiKind("object", ("depth", "thermal"), _independent, _object),
)


def multi_kinds(modalities: Sequence[str]) -> list[MultiKind]:
    """The kinds whose inputs are all among ``modalities``."""
    return [kind for kind in MULTI_KINDS if set(kind.modalities) <= set(modalities)]


def make_multi_records(
    records: Sequence[Source],
    count: int,
    seed: int,
    modalities: Sequence[str],
    names: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """``count`` records of every kind that ``modalities`` allow (of those named ``names``, when
    given), from the world's ``records``."""
    pools: dict[str, list[Source]] = {}
    for record in records:
        pools.setdefault(record["meta"]["modality"], []).append(record)
    out = []
    for number, kind in enumerate(MULTI_KINDS):
        if kind not in multi_kinds(modalities) or (names is not None and kind.name not in names):
            continue
        for index in range(count):
            rng = np.random.default_rng([seed, MULTI_STREAM, number, index])
            out.append(_record(kind, index, pools, rng))
    return out


def _record(
    kind: MultiKind, index: int, pools: Mapping[str, list[Source]], rng: np.random.Generator
) -> dict[str, Any]:
    sources = kind.pick([pools[modality] for modality in kind.modalities], rng)
    question, answer, turn_checks = kind.make(sources, rng)
    tags = "\n".join(placeholder(modality) for modality in kind.modalities)
    record: dict[str, Any] = {"id": f"{kind.label}-{kind.name}-{index:05d}"}
    for modality in dict.fromkeys(kind.modalities):
        paths = [source[modality] for source in sources if source["meta"]["modality"] == modality]
        record[modality] = paths if len(paths) > 1 else paths[0]
    record["conversations"] = [
        {"from": "human", "value": f"{tags}\n{question}"},
        {"from": "gpt", "value": answer},
    ]
    record["meta"] = {
        "modality": kind.label,
        "sources": [source["id"] for source in sources],
        "turns": [{"kind": kind.name, "checks": turn_checks}],
    }
    return record
