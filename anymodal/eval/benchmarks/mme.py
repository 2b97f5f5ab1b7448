"""MME (Fu et al., 2023, "MME: A Comprehensive Evaluation Benchmark for Multimodal Large Language
Models"): yes/no questions about images in 14 subtasks, two questions per image, one whose answer
is Yes and one whose answer is No.

The data is ``MME_Benchmark_release_version.zip`` (linked from the ``Evaluation`` branch of
github.com/BradyFU/Awesome-Multimodal-Large-Language-Models; huggingface.co/datasets/darkyarding/MME),
one folder per subtask, laid out one of two ways, as published and as LLaVA's
``playground/data/eval/MME/convert_answer_to_mme.py`` reads it:

* ``artwork``, ``celebrity``, ``landmark``, ``posters``, ``scene``: ``<subtask>/images/<stem>.jpg``
  and its questions in ``<subtask>/questions_answers_YN/<stem>.txt`` (chosen, as there, by the
  ``images/`` folder being there);
* every other subtask: ``<subtask>/<stem>.txt`` beside its image ``<stem>.jpg`` (``.png`` for
  commonsense_reasoning, numerical_calculation, text_translation and code_reasoning).

Each ``.txt`` holds an image's two questions, one a line, ``question<TAB>answer``::

    Is the word in the logo "angie's"? Please answer yes or no.<TAB>Yes

LLaVA reads a line as ``line.strip().split('\\t')`` (so exactly one tab), and the answer must be
``yes`` or ``no`` once lowercased (``calculation.py`` asserts it). Lines are read as Python's text
mode reads them (``\\r``, ``\\n`` and ``\\r\\n`` all end a line).

Scoring follows ``tools/eval_tool/calculation.py`` (the ``eval_tool.zip`` of that ``Evaluation``
branch) to the letter:

1. a reply is lowercased; it is ``yes`` or ``no`` when it is exactly that, else its first 4
   characters are looked at: ``yes`` if they hold ``yes``, else ``no`` if they hold ``no``, else
   ``other`` (an "other" is wrong whatever the answer; the tool maps yes/no/other to 1/0/-1);
2. per subtask, ``acc`` is the share of questions answered right and ``acc_plus`` the share of
   images whose 2 questions are both right (``img_correct_num == 2``), each ×100 (sklearn's
   ``accuracy_score`` on those labels is that share); its ``score`` is ``acc + acc_plus``;
3. the perception total is the sum of the scores of existence, count, position, color, posters,
   celebrity, scene, landmark, artwork and OCR; the cognition total that of commonsense_reasoning,
   numerical_calculation, text_translation and code_reasoning.

The tool reads each reply as the fourth field of a line of its results file, which its readme says
must hold no line break: here a reply's line breaks are deleted before it is read, as that readme
asks. (The tool leaves each line's ending ``\\n`` on the reply; that cannot change what it reads.)
It pairs an image's questions by their place in the results file, two lines at a time; here they
are paired by their image, which is the same for the files as published, where an image's two
questions come together. An image with one scored question (a run cut short) counts in ``images``
and can never be right in both. The tool also counts, per subtask, the replies read as ``other``
(``other`` here); its precision and recall go into no score and are left out.

As a benchmark (:data:`MME`, ``anymodal eval --benchmark mme --data DIR``), DIR is the release
folder (holding the subtask folders, directly or in ``DIR/MME_Benchmark/``, as the zip on Hugging
Face unpacks); every subtask there is read, so a part of MME can be scored, the subtasks left out
listed under ``missing``. Each question is asked as LLaVA-1.5 asks it (its ``llava_mme.jsonl``):
``Please answer yes or no.`` taken out and :data:`PROMPT` put on a line after the question.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymodal.contract.benchmarks import BenchmarkItem, BenchmarkSpec
from anymodal.contract.errors import UsageError

__all__ = [
    "MME",
    "MMEQuestion",
    "SubtaskScores",
    "asked",
    "read_benchmark",
    "read_question_file",
    "read_reply",
    "read_subtask",
    "score_benchmark",
    "score_subtask",
]

PERCEPTION = (
    "existence", "count", "position", "color", "posters",
    "celebrity", "scene", "landmark", "artwork", "OCR",
)  # fmt: skip
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
#: calculation.py's ``eval_type_dict``: what each total sums, in its order.
GROUPS = {"perception": PERCEPTION, "cognition": COGNITION}
SUBTASKS = PERCEPTION + COGNITION
#: What the release's questions end with, and what LLaVA-1.5's questions end with instead.
OFFICIAL_PROMPT = "Please answer yes or no."
PROMPT = "Answer the question using a single word or phrase."
#: The image of ``<stem>.txt`` is ``<stem>`` with the first of these that is there.
IMAGE_SUFFIXES = (".jpg", ".png")
#: The folder the Hugging Face zip unpacks the subtask folders into.
NESTED_FOLDER = "MME_Benchmark"
_DOWNLOAD = "huggingface.co/datasets/darkyarding/MME (MME_Benchmark_release_version.zip)"


@dataclass(frozen=True)
class MMEQuestion:
    subtask: str
    image: Path
    text: str  # as written in the file, "Please answer yes or no." included
    answer: str  # "yes" or "no"


@dataclass(frozen=True)
class SubtaskScores:
    questions: int
    images: int
    correct: int
    both_correct: int  # images whose two questions are both right
    other: int  # replies read as neither yes nor no

    @property
    def acc(self) -> float:
        # the share first, then ×100, as calculation.py computes it (the same float to the last bit)
        return self.correct / self.questions * 100

    @property
    def acc_plus(self) -> float:
        return self.both_correct / self.images * 100

    @property
    def score(self) -> float:
        return self.acc + self.acc_plus

    def to_dict(self) -> dict[str, float | int]:
        return {
            "acc": self.acc,
            "acc_plus": self.acc_plus,
            "score": self.score,
            "questions": self.questions,
            "images": self.images,
            "other": self.other,
        }


def read_reply(reply: str) -> str:
    """calculation.py's reading of one reply: ``"yes"``, ``"no"`` or ``"other"``, from the reply
    lowercased (line breaks deleted), whole or else from its first 4 characters."""
    text = reply.replace("\r", "").replace("\n", "").lower()
    if text in ("yes", "no"):
        return text
    prefix = text[:4]
    if "yes" in prefix:
        return "yes"
    return "no" if "no" in prefix else "other"


def score_subtask(replies: Sequence[str], answers: Sequence[str], images: Sequence[str]) -> SubtaskScores:
    """One subtask's figures: ``replies[i]`` answers a question about ``images[i]`` whose answer
    is ``answers[i]`` (``"yes"``/``"no"``)."""
    if not len(replies) == len(answers) == len(images):
        raise ValueError(f"{len(replies)} replies for {len(answers)} answers and {len(images)} images")
    if not replies:
        raise ValueError("no replies to score")
    read = [read_reply(reply) for reply in replies]
    right = Counter(
        image for image, said, answer in zip(images, read, answers, strict=True) if said == answer
    )
    return SubtaskScores(
        questions=len(replies),
        images=len(set(images)),
        correct=sum(right.values()),
        both_correct=sum(count == 2 for count in right.values()),
        other=read.count("other"),
    )


def score_benchmark(items: Sequence[BenchmarkItem], replies: Sequence[str]) -> dict[str, Any]:
    """The figures of every subtask answered, and the perception and cognition totals: per group,
    ``total``, ``subtasks`` (by name, in calculation.py's order) and ``missing`` (its subtasks not
    scored, so a partial total is not taken for the whole)."""
    by_subtask: dict[str, tuple[list[str], list[str], list[str]]] = {}
    for item, reply in zip(items, replies, strict=True):
        subtask_replies, answers, images = by_subtask.setdefault(str(item.fields["subtask"]), ([], [], []))
        subtask_replies.append(reply)
        answers.append(str(item.fields["answer"]))
        images.append(str(item.fields["image"]))
    metrics: dict[str, Any] = {}
    for group, names in GROUPS.items():
        scores = {name: score_subtask(*by_subtask[name]) for name in names if name in by_subtask}
        metrics[group] = {
            "total": sum(figures.score for figures in scores.values()),
            "subtasks": {name: figures.to_dict() for name, figures in scores.items()},
            "missing": [name for name in names if name not in by_subtask],
        }
    return metrics


def asked(question: str) -> str:
    """The question as LLaVA-1.5 asks it (its ``llava_mme.jsonl``): without ``Please answer yes or
    no.``, :data:`PROMPT` on the next line."""
    return f"{question.replace(OFFICIAL_PROMPT, '').strip()}\n{PROMPT}"


def read_question_file(path: Path) -> list[tuple[str, str]]:
    """The two ``(question, answer)`` of an MME question file, the answer lowercased; one clear
    error naming the file (and line) for anything else."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such MME question file") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read it as an MME question file ({error.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UsageError(
            f"{path}, line {line}: not UTF-8 text",
            hint="MME's question files are UTF-8 question<TAB>answer lines",
        ) from None
    # the line ends Python's text mode reads (calculation.py's and LLaVA's open()): \r\n, \r, \n
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    pairs = [_pair(path, number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not pairs:
        raise UsageError(f"{path}: no questions (the file is empty)")
    if len(pairs) != 2:
        raise UsageError(
            f"{path}: {len(pairs)} questions, where MME has two about each image",
            hint="calculation.py scores an image's questions as a pair (acc_plus); keep the published files",
        )
    return pairs


def _pair(path: Path, number: int, line: str) -> tuple[str, str]:
    where = f"{path}, line {number}"
    hint = "MME's lines are question<TAB>answer, the answer Yes or No"
    fields = line.strip().split("\t")
    if len(fields) != 2:
        found = "no tab" if len(fields) == 1 else f"{len(fields) - 1} tabs"
        raise UsageError(f"{where} has {found}, where it needs one", hint=hint)
    question, answer = fields
    if answer.lower() not in ("yes", "no"):
        raise UsageError(f"{where}: the answer must be Yes or No, got {answer!r}", hint=hint)
    return question, answer.lower()


def read_subtask(folder: Path, subtask: str) -> list[MMEQuestion]:
    """Every question of one subtask's folder, each with its image found, files in name order."""
    images = folder / "images"
    if images.is_dir():
        questions = folder / "questions_answers_YN"
        if not questions.is_dir():
            raise UsageError(
                f"{folder} has images/ but no questions_answers_YN/ beside it",
                hint=f"keep the subtask folders as the release has them; get it from {_DOWNLOAD}",
            )
    else:
        images = questions = folder
    # hidden files (macOS's ._<name> beside each file of an archive made there) are no questions
    files = sorted(file for file in questions.glob("*.txt") if not file.name.startswith("."))
    if not files:
        raise UsageError(
            f"{questions}: no MME question files (<image>.txt) for subtask {subtask}",
            hint=f"get the release from {_DOWNLOAD}",
        )
    return [
        MMEQuestion(subtask, image, text, answer)
        for file in files
        for image in [_image_of(file, images)]
        for text, answer in read_question_file(file)
    ]


def _image_of(file: Path, folder: Path) -> Path:
    for suffix in IMAGE_SUFFIXES:
        image = folder / f"{file.stem}{suffix}"
        if image.is_file():
            return image
    names = " or ".join(f"{file.stem}{suffix}" for suffix in IMAGE_SUFFIXES)
    raise UsageError(
        f"{file}: its image is missing (no {names} in {folder})",
        hint="each question file needs its image, as in the release",
    )


def read_benchmark(path: Path) -> list[BenchmarkItem]:
    """Every question of the subtasks in the release folder ``path`` (directly or in
    ``MME_Benchmark/``), subtask by subtask in calculation.py's order, as LLaVA-1.5 asks them."""
    root = _release_folder(Path(path))
    items = []
    for subtask in SUBTASKS:
        if not (root / subtask).is_dir():
            continue
        counted: Counter[Path] = Counter()
        for question in read_subtask(root / subtask, subtask):
            index = counted[question.image]
            counted[question.image] += 1
            items.append(
                BenchmarkItem(
                    id=f"{subtask}/{question.image.name}/{index}",
                    question=asked(question.text),
                    media=(("image", question.image),),
                    fields={"subtask": subtask, "image": question.image.name, "answer": question.answer},
                )
            )
    return items


def _release_folder(path: Path) -> Path:
    if not path.is_dir():
        what = "not a folder" if path.exists() else "no such folder"
        raise UsageError(
            f"{path}: {what} (MME's --data is the release folder)", hint=f"get it from {_DOWNLOAD}"
        )
    for folder in (path, path / NESTED_FOLDER):
        if any((folder / subtask).is_dir() for subtask in SUBTASKS):
            return folder
    raise UsageError(
        f"{path}: none of MME's subtask folders ({', '.join(SUBTASKS)}) in it or in {path / NESTED_FOLDER}",
        hint=f"--data is the folder {_DOWNLOAD} unpacks to",
    )


MME = BenchmarkSpec(
    name="mme",
    read=read_benchmark,
    score=score_benchmark,
    description="MME perception and cognition (yes/no, two questions per image), per subtask and total",
    data="the MME_Benchmark_release_version folder, holding the subtask folders (or MME_Benchmark/ "
    "holding them)",
    # only a reply's first 4 characters count (lmms-eval allows 16 tokens for MME as well)
    max_new_tokens=16,
)
