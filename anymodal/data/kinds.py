"""The kinds of instruction data and the teacher's prompts for them, built as LLaVA's are: a system
message saying what to write, few-shot examples as earlier turns (the annotations as the user's
message, the wanted reply as the assistant's), then the record's own annotations.

The built-in kinds are LLaVA's three, worded for any modality: ``conversation`` (a multi-turn
exchange about the input), ``detail`` (a detailed description, answering one of several
instructions) and ``reasoning`` (one question that needs reasoning beyond what is shown, with a
step-by-step answer). The wording is anymodal's own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: How a kind's reply becomes a conversation: ``conversation``, blocks of ``Question:``/``Answer:``
#: separated by ``===`` lines (LLaVA's format); ``answer``, the whole reply is the answer to one of
#: the kind's ``instructions``.
ReplyForm = Literal["conversation", "answer"]
#: Where the inputs' placeholders go: ``auto``, before the first question (the teacher never sees
#: them); ``teacher``, the teacher writes them where they belong (several inputs asked about apart),
#: and a reply without exactly the record's placeholders is rejected.
PlaceholderRule = Literal["auto", "teacher"]


@dataclass(frozen=True)
class Example:
    """One few-shot example: the annotations as the teacher is shown them, and the reply wanted."""

    context: str
    reply: str


@dataclass(frozen=True)
class KindSpec:
    """A kind of data: the teacher's system message and few-shot examples, and how its reply reads.

    ``system`` and the examples may say ``{modality}`` (``image``; ``image and audio`` for a record
    with both), replaced by the record's. ``instructions``: for ``reply: answer``, the user's
    questions, one picked per record (reproducibly, from ``seed``)."""

    system: str
    examples: list[Example] = field(default_factory=list)
    reply: ReplyForm = "conversation"
    instructions: list[str] = field(default_factory=list)
    placeholders: PlaceholderRule = "auto"


_CONVERSATION_SYSTEM = (
    "You are an AI assistant that perceives a single {modality}. What you perceive is given to you "
    "as annotations (captions, labelled regions or events with their coordinates or times, "
    "attributes), but answer as if you perceived the {modality} itself: never mention annotations, "
    "captions or coordinates.\n\n"
    "Write a conversation between a person asking about the {modality} and you answering. Ask about "
    "what it contains, how many, where, when, what things are doing and how they relate, only "
    "questions with a definite answer in the {modality}. Answer in a helpful, confident tone.\n\n"
    "Write each question after a line 'Question:' and each answer after a line 'Answer:', with a line "
    "'===' between them."
)
_CONVERSATION_EXAMPLE = Example(
    context=(
        "captions:\n- A brown dog catches a red frisbee in a park.\n"
        "- A dog leaps for a frisbee on the grass.\n"
        "regions:\n- dog: [0.32, 0.41, 0.58, 0.80]\n- frisbee: [0.50, 0.35, 0.57, 0.42]"
    ),
    reply=(
        "Question:\nWhat animal is in the {modality}?\n===\nAnswer:\nA brown dog.\n===\n"
        "Question:\nWhat is it doing?\n===\nAnswer:\nIt is leaping to catch a red frisbee in the air.\n===\n"
        "Question:\nWhere does this take place?\n===\nAnswer:\nOn the grass of a park."
    ),
)
_DETAIL_SYSTEM = (
    "You are an AI assistant that perceives a single {modality}. What you perceive is given to you "
    "as annotations, but describe it as if you perceived the {modality} itself: never mention "
    "annotations, captions or coordinates. Write one detailed paragraph describing the {modality}: "
    "what is in it, the relations between its parts, and anything notable, without inventing what "
    "the annotations do not support."
)
_DETAIL_EXAMPLE = Example(
    context=_CONVERSATION_EXAMPLE.context,
    reply=(
        "A brown dog is caught mid-leap on the grass of a park, stretching up towards a red frisbee "
        "just above its head. The frisbee is slightly to the right of the dog, which seems about to "
        "catch it, and the open lawn around them suggests a game of fetch."
    ),
)
_DETAIL_INSTRUCTIONS = [
    "Describe the {modality} in detail.",
    "Give a detailed description of the {modality}.",
    "What is in the {modality}? Describe it thoroughly.",
    "Explain what the {modality} shows, in detail.",
    "Write a detailed account of the {modality}'s content.",
    "Describe everything you notice in the {modality}.",
]
_REASONING_SYSTEM = (
    "You are an AI assistant that perceives a single {modality}. What you perceive is given to you "
    "as annotations, but reason as if you perceived the {modality} itself: never mention "
    "annotations, captions or coordinates.\n\n"
    "Ask one question about the {modality} that needs reasoning to answer, such as why something "
    "happens, what will happen next, or what a person should do, and answer it step by step, "
    "grounded in what the {modality} contains.\n\n"
    "Write the question after a line 'Question:' and the answer after a line 'Answer:', with a line "
    "'===' between them."
)
_REASONING_EXAMPLE = Example(
    context=_CONVERSATION_EXAMPLE.context,
    reply=(
        "Question:\nWhy might the dog be jumping?\n===\nAnswer:\nThe frisbee is in the air just above "
        "it, and dogs are often trained to catch a thrown frisbee, so someone has most likely just "
        "thrown it for the dog to fetch; the park's open grass gives room for such a game."
    ),
)

BUILTIN_KINDS: dict[str, KindSpec] = {
    "conversation": KindSpec(system=_CONVERSATION_SYSTEM, examples=[_CONVERSATION_EXAMPLE]),
    "detail": KindSpec(
        system=_DETAIL_SYSTEM, examples=[_DETAIL_EXAMPLE], reply="answer", instructions=_DETAIL_INSTRUCTIONS
    ),
    "reasoning": KindSpec(system=_REASONING_SYSTEM, examples=[_REASONING_EXAMPLE]),
}

#: The annotation fields rendered first, in this order; any other field follows as ``name: value``.
CAPTION_KEYS = ("caption", "captions")
REGION_KEYS = ("boxes", "regions")
EVENT_KEYS = ("timestamps", "events")


def modality_words(modalities: Sequence[str]) -> str:
    """``image``; ``image and audio``; ``image, audio and video``: how a prompt names the inputs."""
    unique = list(dict.fromkeys(modalities)) or ["input"]
    return unique[0] if len(unique) == 1 else f"{', '.join(unique[:-1])} and {unique[-1]}"


def render_context(annotations: Mapping[str, Any]) -> str:
    """The annotations as the teacher reads them: captions, then regions (``label: [box]``), then
    timed events (``start-end s: label``), then every other field as ``name: value``."""
    lines: list[str] = []
    rest = dict(annotations)
    for key in CAPTION_KEYS:
        if key in rest:
            lines += ["captions:", *(f"- {_shown(text)}" for text in _listed(rest.pop(key)))]
    for key in REGION_KEYS:
        if key in rest:
            lines += ["regions:", *(f"- {_region(region)}" for region in _listed(rest.pop(key)))]
    for key in EVENT_KEYS:
        if key in rest:
            lines += ["events:", *(f"- {_event(event)}" for event in _listed(rest.pop(key)))]
    lines += [f"{key}: {_shown(value)}" for key, value in rest.items()]
    return "\n".join(lines)


def teacher_messages(kind: KindSpec, context: str, modalities: Sequence[str]) -> list[dict[str, str]]:
    """The chat messages sent to the teacher for one record of ``kind``."""
    words = modality_words(modalities)
    messages = [{"role": "system", "content": kind.system.replace("{modality}", words)}]
    for example in kind.examples:
        messages.append({"role": "user", "content": example.context.replace("{modality}", words)})
        messages.append({"role": "assistant", "content": example.reply.replace("{modality}", words)})
    messages.append({"role": "user", "content": context})
    return messages


def pick_instruction(
    kind: KindSpec, record_id: str, kind_name: str, seed: int, modalities: Sequence[str]
) -> str:
    """The instruction a ``reply: answer`` record answers: the same for the same record, kind and
    seed on every run (a hash picks it, not a random state that depends on the order of requests)."""
    digest = hashlib.sha256(f"{seed}\0{kind_name}\0{record_id}".encode()).digest()
    chosen = kind.instructions[int.from_bytes(digest[:8], "big") % len(kind.instructions)]
    return chosen.replace("{modality}", modality_words(modalities))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _region(region: Any) -> str:
    """``label: [x0, y0, x1, y1]`` for ``{"label", "box"|"bbox"}``; anything else as written."""
    if isinstance(region, Mapping) and "label" in region:
        box = region.get("box", region.get("bbox"))
        if _is_number(box) or not (isinstance(box, list) and all(map(_is_number, box))):
            return f"{region['label']}: {_shown(box)}" if box is not None else str(region["label"])
        return f"{region['label']}: [{', '.join(f'{x:.2f}' for x in box)}]"
    return _shown(region)


def _event(event: Any) -> str:
    """``start-end s: label`` for ``{"start", "end"?, "label"}`` with numeric times; else as written."""
    if isinstance(event, Mapping) and "label" in event and _is_number(event.get("start")):
        end = f"-{event['end']:.1f}" if _is_number(event.get("end")) else ""
        return f"{event['start']:.1f}{end} s: {event['label']}"
    return _shown(event)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
