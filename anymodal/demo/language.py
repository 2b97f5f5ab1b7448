"""The demo world's language: questions, reference answers, the checks a reply must pass, and judging.

Kept small and regular on purpose, because a model of a million parameters has to learn it:

* every question kind has 3 to 5 paraphrases; a ``describe`` question asks about every attribute
  of the file, every other kind is named after the one attribute it asks about;
* the reference answer is ONE canonical sentence per (kind, class), e.g. "The shape is red.";
* a yes/no question ("Is it hot?") asks about one class; its answer is "Yes, " or "No, " followed
  by the canonical sentence of the true class ("No, it is cold.").

A reply is judged by words, not by exact text: per checked attribute, at least one ``expect`` word
must appear and no ``reject`` word (the other classes' words); :func:`anymodal.eval.scoring.judge_reply`
scores it, so a model that says "It's a red one" about a red shape is right.

It stays one module of about 400 lines because its tables (paraphrases, canonical sentences,
check words) are one vocabulary that has to be read, and kept consistent, together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from anymodal.demo.vocabulary import ATTRIBUTES, MODALITIES, SHAPES, placeholder

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "KINDS",
    "answer",
    "checks",
    "make_conversation",
    "questions",
]

#: modality -> question kinds: ``describe``, then one kind per attribute, named after it.
KINDS: dict[str, tuple[str, ...]] = {
    modality: ("describe", *attributes) for modality, attributes in ATTRIBUTES.items()
}

#: modality -> attribute -> class -> the words of which a correct reply holds at least one.
#: Classes not listed answer to their own name.
_EXPECT_OVERRIDES: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "image": {"position": {"centre": ("centre", "center")}, "size": {"large": ("large", "big")}},
    "video": {
        "motion": {
            "up": ("up", "upward", "upwards"),
            "down": ("down", "downward", "downwards"),
            "still": ("still", "stationary", "static"),
        }
    },
    "audio": {
        "pattern": {
            "beeping": ("beeps", "beeping"),
            "rising": ("rises", "rising"),
            "falling": ("falls", "falling"),
        }
    },
    "depth": {"distance": {"near": ("near", "close")}},
    "thermal": {"temperature": {"hot": ("hot", "warm"), "cold": ("cold", "cool")}},
    "imu": {
        "activity": {
            "still": ("still", "standing"),
            "walking": ("walking", "walks"),
            "running": ("running", "runs"),
            "spinning": ("spinning", "spins", "rotating", "turning"),
        }
    },
}

#: modality -> attribute -> class -> the canonical answer to a question about that attribute.
SENTENCES: dict[str, dict[str, dict[str, str]]] = {
    "image": {
        "shape": {shape: f"It is a {shape}." for shape in SHAPES},
        "colour": {colour: f"The shape is {colour}." for colour in ATTRIBUTES["image"]["colour"]},
        "position": {
            "left": "It is on the left.",
            "right": "It is on the right.",
            "top": "It is at the top.",
            "bottom": "It is at the bottom.",
            "centre": "It is in the centre.",
        },
        "size": {"small": "It is small.", "large": "It is large."},
    },
    "video": {
        "shape": {shape: f"It is a {shape}." for shape in SHAPES},
        "colour": {colour: f"The shape is {colour}." for colour in ATTRIBUTES["video"]["colour"]},
        "motion": {
            "left": "It moves to the left.",
            "right": "It moves to the right.",
            "up": "It moves up.",
            "down": "It moves down.",
            "still": "It stays still.",
        },
    },
    "audio": {
        "pitch": {"low": "The tone is low.", "high": "The tone is high."},
        "pattern": {
            "steady": "It stays steady.",
            "beeping": "It beeps on and off.",
            "rising": "It rises in pitch.",
            "falling": "It falls in pitch.",
        },
    },
    "depth": {"distance": {"near": "It is near the camera.", "far": "It is far from the camera."}},
    "thermal": {"temperature": {"hot": "It is hot.", "cold": "It is cold."}},
    "imu": {
        "activity": {
            "still": "The person is standing still.",
            "walking": "The person is walking.",
            "running": "The person is running.",
            "spinning": "The person is spinning around.",
        }
    },
}

#: modality -> the canonical answer to ``describe``; fields are filled from :data:`PHRASES`.
DESCRIBE: dict[str, str] = {
    "image": "There is a {size} {colour} {shape} {position}.",
    "video": "A {colour} {shape} {motion}.",
    "audio": "I hear a {pattern} {pitch} tone.",
    "depth": "An object {distance}.",
    "thermal": "A {temperature}.",
    "imu": "The person is {activity}.",
}

#: modality -> attribute -> class -> its words in the ``describe`` answer; unlisted: the class name.
PHRASES: dict[str, dict[str, dict[str, str]]] = {
    "image": {
        "position": {
            "left": "on the left",
            "right": "on the right",
            "top": "at the top",
            "bottom": "at the bottom",
            "centre": "in the centre",
        }
    },
    "video": {
        "motion": {
            "left": "moves to the left",
            "right": "moves to the right",
            "up": "moves up",
            "down": "moves down",
            "still": "stays still",
        }
    },
    "depth": {"distance": {"near": "near the camera", "far": "far from the camera"}},
    "thermal": {
        "temperature": {
            "hot": "hot object on a cooler background",
            "cold": "cold object on a warmer background",
        }
    },
    "imu": {"activity": {"still": "standing still", "spinning": "spinning around"}},
}

#: modality -> kind -> open questions (answered with the canonical sentence alone).
OPEN_QUESTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "image": {
        "describe": (
            "Describe the image.",
            "What do you see?",
            "What is in this picture?",
            "Describe the shape in the image.",
        ),
        "shape": ("What shape is this?", "What shape do you see?", "Which shape is in the image?"),
        "colour": ("What colour is the shape?", "Which colour is it?", "What color is the shape?"),
        "position": (
            "Where is the shape?",
            "Where is it in the image?",
            "In which part of the image is the shape?",
        ),
        "size": ("How big is the shape?", "Is the shape small or large?", "What size is the shape?"),
    },
    "video": {
        "describe": (
            "Describe the video.",
            "What happens in this video?",
            "What do you see in the clip?",
            "Describe what the shape does.",
        ),
        "shape": ("What shape is in the video?", "Which shape do you see?", "What shape is it?"),
        "colour": (
            "What colour is the shape?",
            "Which colour is the shape in the video?",
            "What color is it?",
        ),
        "motion": ("Which way does the shape move?", "How does the shape move?", "Where is the shape going?"),
    },
    "audio": {
        "describe": (
            "Describe the sound.",
            "What do you hear?",
            "What is in this recording?",
            "Describe the audio clip.",
        ),
        "pitch": ("Is the tone high or low?", "How high is the tone?", "What is the pitch of the tone?"),
        "pattern": (
            "How does the tone change over time?",
            "What pattern does the sound follow?",
            "Is the tone steady, beeping, rising or falling?",
        ),
    },
    "depth": {
        "describe": (
            "Describe the depth map.",
            "What does the depth map show?",
            "What is in this depth image?",
            "Describe the scene in this depth map.",
        ),
        "distance": (
            "How far away is the object?",
            "Is the object near or far?",
            "How close is the object to the camera?",
        ),
    },
    "thermal": {
        "describe": (
            "Describe the thermal image.",
            "What does the thermal camera show?",
            "What do you see in this thermal image?",
            "Describe the heat in this image.",
        ),
        "temperature": (
            "Is the object hot or cold?",
            "How warm is the object?",
            "What temperature is the object?",
        ),
    },
    "imu": {
        "describe": (
            "Describe the motion data.",
            "What does the motion sensor record?",
            "What do these IMU readings show?",
            "Describe this accelerometer and gyroscope recording.",
        ),
        "activity": ("What is the person doing?", "What activity is this?", "How is the person moving?"),
    },
}

#: modality -> kind -> class -> the yes/no question asking whether the file shows that class.
YES_NO_QUESTIONS: dict[str, dict[str, dict[str, str]]] = {
    "image": {
        "shape": {shape: f"Is it a {shape}?" for shape in SHAPES},
        "colour": {colour: f"Is the shape {colour}?" for colour in ATTRIBUTES["image"]["colour"]},
        "position": {cls: f"Is the shape {text}?" for cls, text in PHRASES["image"]["position"].items()},
        "size": {size: f"Is the shape {size}?" for size in ATTRIBUTES["image"]["size"]},
    },
    "video": {
        "shape": {shape: f"Is the shape in the video a {shape}?" for shape in SHAPES},
        "colour": {colour: f"Is the shape {colour}?" for colour in ATTRIBUTES["video"]["colour"]},
        "motion": {
            "left": "Does the shape move to the left?",
            "right": "Does the shape move to the right?",
            "up": "Does the shape move up?",
            "down": "Does the shape move down?",
            "still": "Does the shape stay still?",
        },
    },
    "audio": {
        "pitch": {"low": "Is the tone low?", "high": "Is the tone high?"},
        "pattern": {
            "steady": "Is the tone steady?",
            "beeping": "Does the tone beep on and off?",
            "rising": "Does the tone rise in pitch?",
            "falling": "Does the tone fall in pitch?",
        },
    },
    "depth": {
        "distance": {
            "near": "Is the object close to the camera?",
            "far": "Is the object far from the camera?",
        }
    },
    "thermal": {"temperature": {"hot": "Is it hot?", "cold": "Is it cold?"}},
    "imu": {
        "activity": {
            "still": "Is the person standing still?",
            "walking": "Is the person walking?",
            "running": "Is the person running?",
            "spinning": "Is the person spinning around?",
        }
    },
}

#: Share of first messages with the placeholder before the question; the rest have it after.
PLACEHOLDER_FIRST = 0.75
#: Share of yes/no questions that ask about the true class (answered "Yes, ...").
ASK_TRUE_CLASS = 0.5


def expect_words(modality: str, attribute: str, cls: str) -> tuple[str, ...]:
    """The words that name ``cls`` of ``attribute``; a correct reply holds at least one."""
    return _EXPECT_OVERRIDES.get(modality, {}).get(attribute, {}).get(cls, (cls,))


def checks(modality: str, kind: str, attributes: Mapping[str, str]) -> dict[str, dict[str, list[str]]]:
    """attribute -> {"expect": [...], "reject": [...]} for a turn of ``kind`` about a file.

    ``describe`` checks every attribute of the modality, any other kind only its own attribute.
    The reject words of an attribute are the expect words of its other classes.
    """
    _check_kind(modality, kind)
    checked = ATTRIBUTES[modality] if kind == "describe" else {kind: ATTRIBUTES[modality][kind]}
    result: dict[str, dict[str, list[str]]] = {}
    for attribute, classes in checked.items():
        true = attributes[attribute]
        reject = [word for cls in classes if cls != true for word in expect_words(modality, attribute, cls)]
        result[attribute] = {"expect": list(expect_words(modality, attribute, true)), "reject": reject}
    return result


def questions(modality: str, kind: str) -> tuple[str, ...]:
    """Every phrasing of a ``kind`` question: the open ones, then one yes/no per class (if any)."""
    _check_kind(modality, kind)
    return OPEN_QUESTIONS[modality][kind] + tuple(YES_NO_QUESTIONS[modality].get(kind, {}).values())


def answer(modality: str, kind: str, attributes: Mapping[str, str], question: str | None = None) -> str:
    """The reference answer to a ``kind`` question about a file with ``attributes``.

    A yes/no ``question`` (one of :func:`questions`, placeholder or not) gets "Yes, " or "No, " before
    the canonical sentence; any other question, or none, gets the canonical sentence alone.
    """
    _check_kind(modality, kind)
    sentence = canonical(modality, kind, attributes)
    asked = _asked_class(modality, kind, question)
    if asked is None:
        return sentence
    opening = "Yes" if asked == attributes[kind] else "No"
    return f"{opening}, {sentence[0].lower()}{sentence[1:]}"


def canonical(modality: str, kind: str, attributes: Mapping[str, str]) -> str:
    """The one sentence that answers a ``kind`` question about a file with ``attributes``."""
    if kind != "describe":
        return SENTENCES[modality][kind][attributes[kind]]
    fields = {
        attribute: PHRASES.get(modality, {})
        .get(attribute, {})
        .get(attributes[attribute], attributes[attribute])
        for attribute in ATTRIBUTES[modality]
    }
    return DESCRIBE[modality].format(**fields)


def make_conversation(
    modality: str, attributes: Mapping[str, str], rng: np.random.Generator
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """A 1- to 3-turn conversation about one file, and the ``meta.turns`` entry of each answer.

    Question kinds are distinct and random; the first user message holds the placeholder, before
    the question (75 %) or after it, on its own line. A turn's entry holds its kind and checks,
    and for a yes/no question ``"yes_no": "yes"`` or ``"no"`` (what the answer starts with).
    """
    kinds = KINDS[modality]
    count = int(rng.integers(1, min(3, len(kinds)) + 1))
    chosen = [kinds[int(index)] for index in rng.permutation(len(kinds))[:count]]
    messages: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []
    for number, kind in enumerate(chosen):
        question, asked = _pick_question(modality, kind, attributes, rng)
        if number == 0:
            tag = placeholder(modality)
            question = f"{tag}\n{question}" if rng.random() < PLACEHOLDER_FIRST else f"{question}\n{tag}"
        messages.append({"from": "human", "value": question})
        messages.append({"from": "gpt", "value": answer(modality, kind, attributes, question)})
        turn: dict[str, Any] = {"kind": kind, "checks": checks(modality, kind, attributes)}
        if asked is not None:
            turn["yes_no"] = "yes" if asked == attributes[kind] else "no"
        turns.append(turn)
    return messages, turns


def _pick_question(
    modality: str, kind: str, attributes: Mapping[str, str], rng: np.random.Generator
) -> tuple[str, str | None]:
    """A random phrasing of ``kind`` and the class it asks about (None for an open question).

    The yes/no form counts as one phrasing among the open ones; it asks about the true class half
    of the time, so "Yes" and "No" are equally common.
    """
    open_questions = OPEN_QUESTIONS[modality][kind]
    yes_no = YES_NO_QUESTIONS[modality].get(kind, {})
    pick = int(rng.integers(len(open_questions) + (1 if yes_no else 0)))
    if pick < len(open_questions):
        return open_questions[pick], None
    true = attributes[kind]
    others = [cls for cls in ATTRIBUTES[modality][kind] if cls != true]
    asked = true if rng.random() < ASK_TRUE_CLASS else others[int(rng.integers(len(others)))]
    return yes_no[asked], asked


def _asked_class(modality: str, kind: str, question: str | None) -> str | None:
    if question is None:
        return None
    text = question.replace(placeholder(modality), "").strip()
    for cls, yes_no in YES_NO_QUESTIONS[modality].get(kind, {}).items():
        if text == yes_no:
            return cls
    return None


def _check_kind(modality: str, kind: str) -> None:
    if modality not in KINDS:
        raise ValueError(f"unknown modality {modality!r}; the demo world has {', '.join(MODALITIES)}")
    if kind not in KINDS[modality]:
        raise ValueError(f"unknown {modality} question kind {kind!r}; known: {', '.join(KINDS[modality])}")
