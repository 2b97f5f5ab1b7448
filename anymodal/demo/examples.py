"""The sample inputs shipped in ``examples/``: one or two files per modality, drawn by the demo world's
renderers with pinned attributes and a fixed seed, plus a README that says what to ask about each.

Regenerate them with ``python -m anymodal.demo.examples examples/``; the bytes come out the same.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anymodal.demo.language import answer
from anymodal.demo.render import render

__all__ = ["EXAMPLES", "Example", "main", "write_examples"]

#: First seed word of every example's generator (the second is its position in EXAMPLES).
EXAMPLES_SEED = 20240


@dataclass(frozen=True)
class Example:
    """One sample file: what it shows, how it is drawn, and a question to ask about it."""

    name: str
    modality: str
    attributes: Mapping[str, str]
    shows: str
    question: str
    kind: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


_PLAIN = {"named_colour": True, "outline": False}

EXAMPLES: tuple[Example, ...] = (
    Example(
        "red_circle.png",
        "image",
        {"shape": "circle", "colour": "red", "position": "centre", "size": "large"},
        "a large red circle in the centre, on plain white",
        "What shape is this?",
        "shape",
        {"canvas": (256, 256), "background": "white", "blur": False, **_PLAIN},
    ),
    Example(
        "blue_square_left.png",
        "image",
        {"shape": "square", "colour": "blue", "position": "left", "size": "small"},
        "a small blue square on the left, on a noisy background",
        "Where is the shape?",
        "position",
        {"canvas": (224, 224), "background": "noisy", "named_colour": False, "outline": False, "blur": False},
    ),
    Example(
        "green_triangle_moving_right.mp4",
        "video",
        {"shape": "triangle", "colour": "green", "motion": "right"},
        "a green triangle moving to the right (3 s)",
        "Which way does the shape move?",
        "motion",
        {"background": "plain", "outline": False},
    ),
    Example(
        "yellow_star_still.mp4",
        "video",
        {"shape": "star", "colour": "yellow", "motion": "still"},
        "a yellow star that stays still (3 s)",
        "Describe the video.",
        "describe",
        {"background": "noisy", "outline": False},
    ),
    Example(
        "high_beeping_tone.wav",
        "audio",
        {"pitch": "high", "pattern": "beeping"},
        "a high tone beeping on and off",
        "Describe the sound.",
        "describe",
    ),
    Example(
        "low_rising_tone.wav",
        "audio",
        {"pitch": "low", "pattern": "rising"},
        "a low tone rising in pitch",
        "How does the tone change over time?",
        "pattern",
    ),
    Example(
        "near_object_depth.png",
        "depth",
        {"distance": "near"},
        "a depth map (16-bit, mm) of an object close to the camera",
        "Is the object close to the camera?",
        "distance",
    ),
    Example(
        "hot_object_thermal.png",
        "thermal",
        {"temperature": "hot"},
        "a thermal image of a hot object",
        "Is the object hot or cold?",
        "temperature",
    ),
    Example(
        "cold_object_thermal.png",
        "thermal",
        {"temperature": "cold"},
        "a thermal image of a cold object",
        "Is it hot?",
        "temperature",
    ),
    Example(
        "running_imu.npy",
        "imu",
        {"activity": "running"},
        "5 s of IMU data (6 x 2000) of a person running",
        "What is the person doing?",
        "activity",
    ),
    Example(
        "spinning_imu.npy",
        "imu",
        {"activity": "spinning"},
        "5 s of IMU data (6 x 2000) of a person spinning around",
        "Describe the motion data.",
        "describe",
    ),
)


def write_examples(directory: Path) -> list[Path]:
    """Write every example file and ``README.md`` to ``directory`` (created if missing); return the
    example files' paths, in :data:`EXAMPLES` order."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, example in enumerate(EXAMPLES):
        path = directory / example.name
        rng = np.random.default_rng([EXAMPLES_SEED, index])
        render(example.modality, example.attributes, rng, path, **example.overrides)
        written.append(path)
    (directory / "README.md").write_text(readme(), encoding="utf-8")
    return written


def readme() -> str:
    """The examples' README: a table of the files, what each shows and a question to ask. Commands
    name the files as shipped, under ``examples/`` from the repository root."""
    lines = [
        "# Examples",
        "",
        "Sample inputs for every first-party modality, drawn by the synthetic demo world that the",
        "demo model is trained on (`anymodal demo-data`). Ask the model about them, for example:",
        "",
        "| File | Shows | Try | Reference answer |",
        "| --- | --- | --- | --- |",
    ]
    for example in EXAMPLES:
        command = f'`anymodal chat --{example.modality} examples/{example.name} "{example.question}"`'
        expected = answer(example.modality, example.kind, example.attributes, example.question)
        lines.append(f"| `{example.name}` | {example.shows} | {command} | {expected} |")
    lines += [
        "",
        "The files are regenerated, byte for byte, with `python -m anymodal.demo.examples examples/`.",
        "",
        "Beside them, written by hand: `tour.txt`, the chat script `make chat` runs; `batch.jsonl`, requests",
        "for `anymodal batch examples/batch.jsonl -o out.jsonl` (docs/batch.md); and `serve_client.py`,",
        "which asks an `anymodal serve` server about each file with the `openai` client",
        "(docs/serving-modalities.md).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m anymodal.demo.examples DIRECTORY``: write the examples there."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m anymodal.demo.examples DIRECTORY", file=sys.stderr)
        return 2
    for path in write_examples(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
