"""Text-only conversations for the demo model: what it says to a message that comes without an input.

A newcomer's first message is often "Hello", or a question with no file attached. Every
conversation of the world has an input, so the recipe adds these to the training data: greetings
and questions about the model are answered with :data:`INTRODUCTION`, the world's own questions
asked without a file with :data:`NO_INPUT`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anymodal.demo.language import OPEN_QUESTIONS

__all__ = ["GREETINGS", "INTRODUCTION", "NO_INPUT", "small_talk"]

GREETINGS = (
    "Hello",
    "Hello!",
    "Hi",
    "Hi!",
    "Hey there!",
    "Good morning!",
    "Who are you?",
    "What are you?",
    "What can you do?",
    "What do you know about?",
    "How do I use you?",
    "Help",
)
INTRODUCTION = (
    "Hello! I am anymodal's demo model. Attach an image, video, sound, depth map, thermal image "
    "or IMU file, and ask me about it."
)
NO_INPUT = "I have no input to look at. Attach a file, and ask me again."

#: Every question of the world, as asked about a file that is not there.
_FILELESS = tuple(
    question for kinds in OPEN_QUESTIONS.values() for phrasings in kinds.values() for question in phrasings
)


def small_talk(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` one-turn conversations in the trainer's format, with no media: greetings and
    fileless questions in turn, each drawn at random from its list."""
    rng = np.random.default_rng([seed, 0x5A11])
    records = []
    for index in range(count):
        asked, reply = (GREETINGS, INTRODUCTION) if index % 2 == 0 else (_FILELESS, NO_INPUT)
        question = asked[int(rng.integers(len(asked)))]
        records.append(
            {
                "id": f"text-{index:05d}",
                "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": reply}],
            }
        )
    return records
