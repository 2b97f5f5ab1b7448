"""ScienceQA-IMG (Lu et al., 2022, "Learn to Explain: Multimodal Reasoning via Thought Chains for
Science Question Answering"): multiple-choice science questions (2 to 5 choices), scored, as LLaVA
reports it, on the test split's questions that come with an image.

The data is ScienceQA's ``data/scienceqa/`` folder as published (github.com/lupantech/ScienceQA):

* ``problems.json``, one JSON object mapping each problem id to its problem: ``question``,
  ``choices`` (a list), ``answer`` (the index of the right choice), ``hint`` (the text context, maybe
  ``""``), ``image`` (``"image.png"`` or null), ``subject``, ``grade`` (``"grade1"`` to ``"grade12"``)
  and more (``lecture``, ``solution``, ``topic``, ``split``, ...) that are not needed here;
* ``pid_splits.json``, mapping each split (``train``, ``val``, ``test``, ...) to its problem ids;
* the images, ``images/test/<id>/image.png`` (the ``test.zip`` that its ``tools/download.sh``
  unpacks in ``images/``), as LLaVA's ``scripts/v1_5/eval/sqa.sh`` reads them.

Only the problems of the ``test`` split (in ``pid_splits.json``'s order) that have an image are
asked: the IMG subset, whose accuracy is the ScienceQA figure LLaVA-1.5 reports (``eval_science_qa.py``
prints it as ``IMG-Accuracy``). A benchmark has no options, so the text-only test problems are not
asked; every test problem is still checked.

A problem is asked as in LLaVA-1.5's ``llava_test_CQM-A.json`` (from its evaluation data, not built
by a published script; its layout is seen in its records and in lmms-eval's ``sqa_doc_to_text``,
which reproduces it) and ``llava/eval/model_vqa_science.py --single-pred-prompt``: ``Context:
<hint>`` on a line when the hint is not empty, the question on a line, one ``A. <choice>`` line per
choice, all stripped, then :data:`PROMPT` on a line.

Scoring follows LLaVA's ``llava/eval/eval_science_qa.py`` to the letter (a reply is stripped first,
as ``model_vqa_science.py`` strips what it writes):

1. a reply that is exactly one of ``A`` to ``E`` is that letter; else one whose first character is
   one of them followed by ``". "`` is that letter; else one holding exactly one match of the
   regular expression ``The answer is ([A-Z]).`` (its ``.`` any character but a line break, so
   ``The answer is B`` at the very end does not match) is the matched letter;
2. the letter counts only when it names one of the problem's choices; anything else (no letter, two
   ``The answer is``, a lowercase letter, ``D`` for a 3-choice problem) reads as index -1, so the
   reply is wrong. (``get_pred_idx`` returns -1 before its ``random.choice`` line, which is never
   reached: no reply is scored by chance.) Such replies are counted in ``unread``;
3. accuracy is the share of right replies ×100 (0 to 100, unrounded, as LLaVA's result file holds
   it; ScienceQA's ``tools/evaluate_acc.py`` prints the same figures to 2 decimals).

The breakdown is ScienceQA's ``tools/evaluate_acc.py``'s: ``NAT``, ``SOC``, ``LAN`` by ``subject``
(natural, social, language science); ``TXT`` (the hint is not empty), ``IMG`` (there is an image)
and ``NO`` (neither), which overlap; ``G1-6`` (``grade1`` to ``grade6``) and ``G7-12`` (``grade7``
to ``grade12``). A category with no question has accuracy null (``evaluate_acc.py`` prints -1): on
the IMG subset ``IMG`` is every question and ``NO`` none.

As a benchmark (:data:`SCIENCEQA`, ``anymodal eval --benchmark scienceqa --data DIR``), DIR is the
folder holding ``problems.json``, ``pid_splits.json`` and ``images/`` (ScienceQA's
``data/scienceqa``, or LLaVA's ``playground/data/eval/scienceqa``); a clone of the ScienceQA repo
(holding ``data/scienceqa/``) or the ``problems.json`` file itself will do as well.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymodal.contract.benchmarks import BenchmarkItem, BenchmarkSpec
from anymodal.contract.errors import UsageError
from anymodal.files.text import read_text

__all__ = [
    "CATEGORIES",
    "SCIENCEQA",
    "Problem",
    "Tally",
    "asked",
    "categories",
    "predicted_index",
    "read_benchmark",
    "read_letter",
    "read_problems",
    "score_benchmark",
]

#: eval_science_qa.py's ``--options``: the letters of a problem's choices, in order.
OPTIONS = ("A", "B", "C", "D", "E")
#: What model_vqa_science.py's ``--single-pred-prompt`` puts on a line after the question.
PROMPT = "Answer with the option's letter from the given choices directly."
SPLIT = "test"
SUBJECTS = {"natural science": "NAT", "social science": "SOC", "language science": "LAN"}
GRADES = {f"grade{number}": "G1-6" if number <= 6 else "G7-12" for number in range(1, 13)}
#: evaluate_acc.py's figures, in its order.
CATEGORIES = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12")
PROBLEMS_FILE = "problems.json"
SPLITS_FILE = "pid_splits.json"
#: Where the test images are, relative to the data folder; and the data folder in a repo clone.
IMAGE_FOLDER = Path("images") / SPLIT
REPO_FOLDER = Path("data") / "scienceqa"
_KEYS = ("question", "choices", "answer", "hint", "image", "subject", "grade")
_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")
_DOWNLOAD = (
    "get problems.json and pid_splits.json from github.com/lupantech/ScienceQA (data/scienceqa/) "
    "and its images with its tools/download.sh"
)


@dataclass(frozen=True)
class Problem:
    pid: str
    question: str
    choices: tuple[str, ...]
    answer: int  # the index of the right choice
    hint: str
    image: str | None  # the file name in images/<split>/<pid>/, or None
    subject: str
    grade: str


@dataclass(frozen=True)
class Tally:
    correct: int
    count: int

    @property
    def accuracy(self) -> float | None:
        # the share first, then ×100, as both official scripts compute it
        return self.correct / self.count * 100 if self.count else None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"accuracy": self.accuracy, "correct": self.correct, "count": self.count}


def read_letter(reply: str) -> str | None:
    """eval_science_qa.py's reading of a reply (stripped): the letter it names, or None (its
    ``FAILED``)."""
    text = reply.strip()
    if text in OPTIONS:
        return text
    if len(text) >= 3 and text[0] in OPTIONS and text[1:3] == ". ":
        return text[0]
    found = _ANSWER_IS.findall(text)
    return found[0] if len(found) == 1 else None


def predicted_index(reply: str, choice_count: int) -> int:
    """The index of the choice ``reply`` picks among ``choice_count``, or -1 (always wrong) when it
    names none of them, as eval_science_qa.py's ``get_pred_idx`` returns."""
    letter = read_letter(reply)
    return OPTIONS.index(letter) if letter in OPTIONS[:choice_count] else -1


def categories(problem: Problem) -> list[str]:
    """The evaluate_acc.py figures ``problem`` counts in: its subject, its context (TXT and IMG, or
    NO) and its grade group."""
    context = [name for name, has in (("TXT", problem.hint), ("IMG", problem.image)) if has] or ["NO"]
    return [SUBJECTS[problem.subject], *context, GRADES[problem.grade]]


def asked(problem: Problem) -> str:
    """The question as LLaVA-1.5 asks it: its llava_test_CQM-A.json text (stripped, as
    model_vqa_science.py strips it) and :data:`PROMPT` on the next line."""
    context = f"Context: {problem.hint}\n" if problem.hint else ""
    options = "\n".join(
        f"{letter}. {choice}" for letter, choice in zip(OPTIONS, problem.choices, strict=False)
    )
    text = f"{context}{problem.question}\n{options}".strip()
    return f"{text}\n{PROMPT}"


def score_benchmark(items: Sequence[BenchmarkItem], replies: Sequence[str]) -> dict[str, Any]:
    """The accuracy over every question (``accuracy``, ``correct``, ``count``), the replies naming no
    choice (``unread``), and the same figures per evaluate_acc.py category (``categories``)."""
    predicted = [
        predicted_index(reply, int(item.fields["choices"]))
        for item, reply in zip(items, replies, strict=True)
    ]
    correct = [index == item.fields["answer"] for item, index in zip(items, predicted, strict=True)]
    right: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
    counted: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
    for item, is_right in zip(items, correct, strict=True):
        for name in item.fields["categories"]:
            counted[name] += 1
            right[name] += is_right
    overall = Tally(sum(correct), len(items))
    return {
        **overall.to_dict(),
        "unread": predicted.count(-1),
        "categories": {name: Tally(right[name], counted[name]).to_dict() for name in CATEGORIES},
    }


def read_problems(folder: Path) -> list[Problem]:
    """Every problem of the test split, in pid_splits.json's order, from ``folder``'s
    problems.json and pid_splits.json, checked: one clear error naming the file and problem."""
    problems_file, splits_file = folder / PROBLEMS_FILE, folder / SPLITS_FILE
    problems = _json_object_file(problems_file)
    splits = _json_object_file(splits_file)
    if SPLIT not in splits:
        raise UsageError(f"{splits_file} has no {SPLIT} split", hint=_DOWNLOAD)
    pids = splits[SPLIT]
    if not isinstance(pids, list) or not all(isinstance(pid, str) for pid in pids):
        raise UsageError(f"{splits_file}: the {SPLIT} split must be a list of problem ids (strings)")
    missing = [pid for pid in pids if pid not in problems]
    if missing:
        raise UsageError(
            f"{splits_file} lists {SPLIT} problem {missing[0]!r}, which {problems_file} does not have "
            f"({len(missing)} such)",
            hint="keep the two files as published together",
        )
    return [_problem(f"{problems_file}, problem {pid}", pid, problems[pid]) for pid in pids]


def _json_object_file(path: Path) -> dict[str, Any]:
    text = read_text(path, f"ScienceQA's {path.name}", "JSON", hint=_DOWNLOAD)
    try:
        record = json.loads(text)
    except ValueError as error:
        raise UsageError(f"{path} is not JSON: {error}", hint=_DOWNLOAD) from None
    if not isinstance(record, dict):
        raise UsageError(f"{path} is not a JSON object (id -> value)", hint=_DOWNLOAD)
    return record


def _problem(where: str, pid: str, record: object) -> Problem:
    if not isinstance(record, dict):
        raise UsageError(f"{where} is not a JSON object")
    missing = [key for key in _KEYS if key not in record]
    if missing:
        raise UsageError(
            f"{where} has no {', '.join(missing)}", hint=f"ScienceQA's problems have {', '.join(_KEYS)}"
        )
    for key in ("question", "hint"):
        if not isinstance(record[key], str):
            raise UsageError(f"{where}: {key} must be a string, got {record[key]!r}")
    choices, answer, image = record["choices"], record["answer"], record["image"]
    if not isinstance(choices, list) or not 0 < len(choices) <= len(OPTIONS):
        raise UsageError(f"{where}: choices must be a list of 1 to {len(OPTIONS)} strings, got {choices!r}")
    if not all(isinstance(choice, str) for choice in choices):
        raise UsageError(f"{where}: choices must be strings, got {choices!r}")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise UsageError(
            f"{where}: answer must be the index of one of its {len(choices)} choices, got {answer!r}"
        )
    if image is not None and (not isinstance(image, str) or not image):
        raise UsageError(f"{where}: image must be a file name or null, got {image!r}")
    if record["subject"] not in SUBJECTS:
        raise UsageError(f"{where}: subject must be one of {', '.join(SUBJECTS)}, got {record['subject']!r}")
    if record["grade"] not in GRADES:
        raise UsageError(f"{where}: grade must be grade1 to grade12, got {record['grade']!r}")
    return Problem(
        pid,
        record["question"],
        tuple(choices),
        answer,
        record["hint"],
        image,
        record["subject"],
        record["grade"],
    )


def read_benchmark(path: Path) -> list[BenchmarkItem]:
    """The test problems with an image under ``path`` (the data folder, a ScienceQA clone or its
    problems.json), each asked as LLaVA-1.5 asks it, with its image in ``images/test/<id>/``."""
    folder = _data_folder(Path(path))
    images = folder / IMAGE_FOLDER
    if not images.is_dir():
        raise UsageError(f"{folder}: no {IMAGE_FOLDER}/ folder for the test images in it", hint=_DOWNLOAD)
    return [
        BenchmarkItem(
            id=problem.pid,
            question=asked(problem),
            media=(("image", images / problem.pid / problem.image),),
            fields={
                "answer": problem.answer,
                "choices": len(problem.choices),
                "categories": categories(problem),
            },
        )
        for problem in read_problems(folder)
        if problem.image is not None
    ]


def _data_folder(path: Path) -> Path:
    if path.is_file():
        return path.parent
    for folder in (path, path / REPO_FOLDER):
        if (folder / PROBLEMS_FILE).exists():
            return folder
    raise UsageError(f"{path}: no {PROBLEMS_FILE} in it or in {path / REPO_FOLDER}", hint=_DOWNLOAD)


SCIENCEQA = BenchmarkSpec(
    name="scienceqa",
    read=read_benchmark,
    score=score_benchmark,
    description="ScienceQA-IMG (multiple choice, test problems with an image), accuracy and "
    "ScienceQA's breakdown by subject, context and grade",
    data="ScienceQA's data/scienceqa folder: problems.json, pid_splits.json and images/test/",
    # LLaVA allows 1024; the reply asked for is one letter, and 128 tokens leave room for a
    # sentence ending "The answer is X."
    max_new_tokens=128,
)
