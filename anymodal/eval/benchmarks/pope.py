"""POPE (Li et al., 2023, "Evaluating Object Hallucination in Large Vision-Language Models"):
yes/no questions "Is there a <object> in the image?" about COCO images, half of them about objects
that are not there, drawn three ways (the ``random``, ``popular`` and ``adversarial`` splits).

The question files are JSON Lines as published, one question a line::

    {"question_id": 1, "image": "COCO_val2014_000000310196.jpg",
     "text": "Is there a snowboard in the image?", "label": "yes"}

(one line in the file; wrapped here)

and a split is named by its file, ``coco_pope_<split>.json``. Scoring follows the official
``evaluate.py`` to the letter:

1. a reply is cut at its first full stop (the text before the first ``.``, if any);
2. commas are removed and the rest split on single spaces;
3. the reply is "no" when one of the words is exactly ``No``, ``no`` or ``not``; anything else is
   "yes" (so an empty or evasive reply counts as yes, as in the official script);
4. with "yes" as the positive class: accuracy, precision, recall, F1 and the share of "yes"
   replies (``yes_ratio``); a label other than ``no`` counts as yes, as there.

Where the official script divides by zero (no reply is yes, or no label is yes), the figure here is
0.0 instead of a crash.

As a benchmark (:data:`POPE`, ``anymodal eval --benchmark pope --data DIR``), DIR holds one or more
question files, directly or in ``DIR/coco/``, and the COCO val2014 images they name, in
``DIR/val2014/`` or beside the question files (LLaVA's evaluation layout); DIR may also be one
question file. Each question is asked as LLaVA-1.5 asks it, with :data:`PROMPT` after its text, and
each split is scored on its own, as the official script does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anymodal.contract.benchmarks import BenchmarkItem, BenchmarkSpec
from anymodal.contract.errors import UsageError
from anymodal.files.jsonl import json_object
from anymodal.files.text import read_text

__all__ = [
    "POPE",
    "PopeQuestion",
    "PopeScores",
    "read_benchmark",
    "read_questions",
    "reply_is_yes",
    "score",
    "score_benchmark",
    "split_of",
]

#: The words that make a reply "no" (case-sensitive, as the official script compares them).
NO_WORDS = frozenset({"No", "no", "not"})
SPLITS = ("random", "popular", "adversarial")
#: What LLaVA-1.5's POPE questions add to the question's text.
PROMPT = "Answer the question using a single word or phrase."
#: Where the images are looked for, relative to the folder of the question files, in order.
IMAGE_FOLDERS = ("val2014", "../val2014", ".")
_SPLIT_FILE = re.compile(r"pope_(random|popular|adversarial)\b")


@dataclass(frozen=True)
class PopeQuestion:
    question_id: int | str
    image: str
    text: str
    label: str  # "yes" or "no"


@dataclass(frozen=True)
class PopeScores:
    true_positive: int
    false_positive: int
    true_negative: int
    false_negative: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    yes_ratio: float

    @property
    def count(self) -> int:
        return self.true_positive + self.false_positive + self.true_negative + self.false_negative

    def to_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "yes_ratio": self.yes_ratio,
            "true_positive": self.true_positive,
            "false_positive": self.false_positive,
            "true_negative": self.true_negative,
            "false_negative": self.false_negative,
        }


def reply_is_yes(reply: str) -> bool:
    """The official reading of one reply: its first sentence, commas dropped, has no ``No``,
    ``no`` or ``not`` among its space-separated words."""
    first = reply.split(".")[0]
    words = first.replace(",", "").split(" ")
    return not NO_WORDS.intersection(words)


def score(replies: Sequence[str], labels: Sequence[str]) -> PopeScores:
    """POPE's figures for ``replies`` against ``labels`` (``"yes"``/``"no"``), pairwise."""
    if len(replies) != len(labels):
        raise ValueError(f"{len(replies)} replies for {len(labels)} labels")
    if not replies:
        raise ValueError("no replies to score")
    predicted = [reply_is_yes(reply) for reply in replies]
    truth = [label != "no" for label in labels]
    tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
    fp = sum(p and not t for p, t in zip(predicted, truth, strict=True))
    tn = sum(not p and not t for p, t in zip(predicted, truth, strict=True))
    fn = sum(not p and t for p, t in zip(predicted, truth, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PopeScores(
        tp, fp, tn, fn, (tp + tn) / len(replies), precision, recall, f1, sum(predicted) / len(replies)
    )


def split_of(path: Path) -> str:
    """The split a question file holds, from its name (``coco_pope_adversarial.json``: adversarial)."""
    found = _SPLIT_FILE.search(path.name)
    if found is None:
        raise UsageError(
            f"{path}: not a POPE question file name (expected coco_pope_<split>.json)",
            hint=f"the splits are {', '.join(SPLITS)}; keep the published file names",
        )
    return found.group(1)


def read_questions(path: Path) -> list[PopeQuestion]:
    """Every question of a POPE question file, checked: one clear error naming the file and line."""
    text = read_text(Path(path), "a POPE question file", "JSON Lines")
    # split("\n"), not splitlines(): a question's text may hold U+2028, which splitlines breaks on.
    numbered = enumerate(text.split("\n"), 1)
    questions = [_question(path, number, line) for number, line in numbered if line.strip()]
    if not questions:
        raise UsageError(f"{path}: no questions (the file is empty)")
    return questions


def _question(path: Path, number: int, line: str) -> PopeQuestion:
    where = f"{path}, line {number}"
    record = json_object(line, where)
    missing = [key for key in ("question_id", "image", "text", "label") if key not in record]
    if missing:
        raise UsageError(
            f"{where} has no {', '.join(missing)}", hint="POPE's lines have question_id, image, text, label"
        )
    if record["label"] not in ("yes", "no"):
        raise UsageError(f"{where}: label must be yes or no, got {record['label']!r}")
    return PopeQuestion(record["question_id"], str(record["image"]), str(record["text"]), record["label"])


def read_benchmark(path: Path) -> list[BenchmarkItem]:
    """Every question of the POPE question files at ``path`` (a file, or a folder holding them
    directly or in ``coco/``), each with its image found, in split order."""
    path = Path(path)
    if path.is_dir():
        folder = path / "coco" if not _question_files(path) and (path / "coco").is_dir() else path
        files = _question_files(folder)
        if not files:
            raise UsageError(
                f"{path}: no POPE question files (coco_pope_<split>.json) in it or in {path / 'coco'}",
                hint="get them from github.com/AoiDragon/POPE (output/coco/); see docs/evaluation.md",
            )
    else:
        files = [path]
    items = []
    for file in files:
        split = split_of(file)
        images = _image_folder(file.parent)
        for question in read_questions(file):
            items.append(
                BenchmarkItem(
                    id=f"{split}/{question.question_id}",
                    question=f"{question.text}\n{PROMPT}",
                    media=(("image", images / question.image),),
                    fields={"split": split, "label": question.label},
                )
            )
    return items


def score_benchmark(items: Sequence[BenchmarkItem], replies: Sequence[str]) -> dict[str, object]:
    """POPE's figures per split (``splits``), and their mean accuracy and F1 over the splits."""
    by_split: dict[str, tuple[list[str], list[str]]] = {}
    for item, reply in zip(items, replies, strict=True):
        split_replies, labels = by_split.setdefault(str(item.fields["split"]), ([], []))
        split_replies.append(reply)
        labels.append(str(item.fields["label"]))
    order = sorted(by_split, key=lambda split: SPLITS.index(split) if split in SPLITS else len(SPLITS))
    splits = {split: score(*by_split[split]).to_dict() for split in order}
    mean = {
        name: sum(float(figures[name]) for figures in splits.values()) / len(splits) if splits else 0.0
        for name in ("accuracy", "f1")
    }
    return {"splits": splits, "mean": mean}


def _question_files(folder: Path) -> list[Path]:
    found = {split_of(file): file for file in folder.glob("*pope_*.json") if _SPLIT_FILE.search(file.name)}
    return [found[split] for split in SPLITS if split in found]


def _image_folder(folder: Path) -> Path:
    for relative in IMAGE_FOLDERS:
        candidate = (folder / relative).resolve()
        if candidate.is_dir() and (relative == "." or any(candidate.iterdir())):
            return candidate
    return folder


POPE = BenchmarkSpec(
    name="pope",
    read=read_benchmark,
    score=score_benchmark,
    description="POPE object hallucination (yes/no about COCO val2014 images), per split",
    data="a folder with coco_pope_<split>.json (or coco/ holding them) and val2014/ images, "
    "or one question file",
    max_new_tokens=16,
)
