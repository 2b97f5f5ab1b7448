"""ScienceQA-IMG as LLaVA scores it (eval_science_qa.py), broken down as ScienceQA's
evaluate_acc.py does: the reply reading, the prompt, the figures, the published files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from anymodal.contract.errors import UsageError
from anymodal.eval.benchmark import read_items
from anymodal.eval.benchmarks.scienceqa import (
    CATEGORIES,
    PROMPT,
    SCIENCEQA,
    Problem,
    asked,
    categories,
    predicted_index,
    read_benchmark,
    read_letter,
    read_problems,
    score_benchmark,
)


@pytest.mark.parametrize(
    ("reply", "choices", "index"),
    [
        ("A", 3, 0),
        ("C", 3, 2),
        ("E", 5, 4),
        ("  B\n", 3, 1),  # stripped first, as model_vqa_science.py writes it
        ("B. sample A", 3, 1),  # a letter, a full stop and a space
        ("B.", 3, -1),  # too short for that, and no "The answer is"
        ("B.sample A", 3, -1),
        ("B) sample A", 3, -1),
        ("(B)", 3, -1),
        ("b", 3, -1),  # case-sensitive
        ("The answer is B.", 3, 1),
        ("I think so. The answer is C, since it rusts.", 3, 2),  # the pattern's "." is any character
        ("The answer is B", 3, -1),  # ... but one must follow the letter
        ("The answer is B\n.", 3, -1),  # ... and a line break is not one
        ("The answer is A. Or: The answer is B.", 3, -1),  # two matches: FAILED
        ("the answer is B.", 3, -1),
        ("D", 3, -1),  # a letter past the problem's choices
        ("The answer is F.", 5, -1),  # a letter no problem has
        ("Answer: A", 3, -1),
        ("", 3, -1),
    ],
)
def test_a_reply_is_read_as_eval_science_qa_reads_it(reply: str, choices: int, index: int) -> None:
    assert predicted_index(reply, choices) == index


def test_an_unread_reply_is_failed_not_a_random_choice() -> None:
    assert read_letter("It is the second one.") is None
    # get_pred_idx returns -1 before its random.choice line: the same -1 every time, always wrong
    assert {predicted_index("It is the second one.", 2) for _ in range(20)} == {-1}
    assert read_letter("The answer is F.") == "F" and predicted_index("The answer is F.", 5) == -1


def problem(**changes: Any) -> Problem:
    fields: dict[str, Any] = {
        "pid": "5",
        "question": "Which is the best answer?",
        "choices": ("north", "south"),
        "answer": 0,
        "hint": "",
        "image": "image.png",
        "subject": "social science",
        "grade": "grade4",
    }
    return Problem(**{**fields, **changes})


def test_a_problem_is_asked_as_llava_1_5_asks_it() -> None:
    assert asked(problem()) == f"Which is the best answer?\nA. north\nB. south\n{PROMPT}"
    with_hint = problem(hint="Figure: a map.\n\nRead it.", choices=("a", "b", "c"))
    assert asked(with_hint) == (
        "Context: Figure: a map.\n\nRead it.\nWhich is the best answer?\nA. a\nB. b\nC. c\n"
        "Answer with the option's letter from the given choices directly."
    )
    # the text is stripped before the prompt goes after it
    assert (
        asked(problem(hint=" ", choices=("x ",))) == f"Context:  \nWhich is the best answer?\nA. x\n{PROMPT}"
    )


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({}, ["SOC", "IMG", "G1-6"]),
        ({"hint": "A text."}, ["SOC", "TXT", "IMG", "G1-6"]),
        ({"hint": "A text.", "image": None, "subject": "language science"}, ["LAN", "TXT", "G1-6"]),
        ({"image": None, "subject": "natural science", "grade": "grade7"}, ["NAT", "NO", "G7-12"]),
        ({"grade": "grade6"}, ["SOC", "IMG", "G1-6"]),
        ({"grade": "grade12"}, ["SOC", "IMG", "G7-12"]),
    ],
)
def test_a_problem_counts_in_evaluate_acc_py_s_categories(changes: dict[str, Any], names: list[str]) -> None:
    assert categories(problem(**changes)) == names


def record(**changes: Any) -> dict[str, Any]:
    """A problem as problems.json publishes it (the keys not read here included)."""
    return {
        "question": "Which of these states is farthest north?",
        "choices": ["West Virginia", "Louisiana", "Arizona", "Oklahoma"],
        "answer": 0,
        "hint": "",
        "image": "image.png",
        "task": "closed choice",
        "grade": "grade2",
        "subject": "social science",
        "topic": "geography",
        "category": "Geography",
        "skill": "Read a map: cardinal directions",
        "lecture": "Maps have four cardinal directions.",
        "solution": "Look at the compass rose.",
        "split": "test",
        **changes,
    }


PROBLEMS = {
    "1": record(split="train"),
    "4": record(
        question="Which figure of speech is used in this text?",
        choices=["chiasmus", "apostrophe"],
        answer=1,
        image=None,
        subject="language science",
        grade="grade11",
    ),
    "5": record(),
    "11": record(
        question="Which type of sentence is this?",
        choices=["compound", "simple", "complex"],
        answer=2,
        hint="Read the sentence.",
        subject="language science",
        grade="grade8",
    ),
    "15": record(
        question="Which property do these objects have in common?",
        choices=["hard", "soft"],
        answer=1,
        hint="Select the best answer.",
        subject="natural science",
        grade="grade3",
    ),
    "22": record(
        question="What is the capital of Utah?",
        choices=["Salt Lake City", "Provo", "Ogden", "Denver", "Orem"],
        answer=3,
        grade="grade9",
    ),
}
SPLITS = {"train": ["1"], "val": [], "test": ["5", "4", "11", "15", "22"], "minitest": ["5"]}


def write_data(folder: Path, problems: object = PROBLEMS, splits: object = SPLITS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "problems.json").write_text(json.dumps(problems, indent=4), encoding="utf-8")
    (folder / "pid_splits.json").write_text(json.dumps(splits), encoding="utf-8")
    (folder / "images" / "test").mkdir(parents=True, exist_ok=True)
    return folder


def test_the_test_problems_with_an_image_are_read_as_published(tmp_path: Path) -> None:
    folder = write_data(tmp_path / "scienceqa")
    items = read_benchmark(folder)
    # pid_splits.json's order; problem 4 has no image, problem 1 is not in the test split
    assert [item.id for item in items] == ["5", "11", "15", "22"]
    assert items[0].question == (
        "Which of these states is farthest north?\n"
        "A. West Virginia\nB. Louisiana\nC. Arizona\nD. Oklahoma\n" + PROMPT
    )
    assert items[1].question == (
        "Context: Read the sentence.\nWhich type of sentence is this?\nA. compound\nB. simple\nC. complex\n"
        + PROMPT
    )
    assert items[1].media == (("image", folder / "images" / "test" / "11" / "image.png"),)
    assert [dict(item.fields) for item in items] == [
        {"answer": 0, "choices": 4, "categories": ["SOC", "IMG", "G1-6"]},
        {"answer": 2, "choices": 3, "categories": ["LAN", "TXT", "IMG", "G7-12"]},
        {"answer": 1, "choices": 2, "categories": ["NAT", "TXT", "IMG", "G1-6"]},
        {"answer": 3, "choices": 5, "categories": ["SOC", "IMG", "G7-12"]},
    ]
    assert read_items(SCIENCEQA, folder) == items  # ids unique, as the runner checks
    # every test problem is read and checked, the one without an image too
    assert [p.pid for p in read_problems(folder)] == ["5", "4", "11", "15", "22"]


def test_a_scienceqa_clone_or_its_problems_json_will_do(tmp_path: Path) -> None:
    folder = write_data(tmp_path / "ScienceQA" / "data" / "scienceqa")
    expected = read_benchmark(folder)
    assert read_benchmark(tmp_path / "ScienceQA") == expected
    assert read_benchmark(folder / "problems.json") == expected


def test_the_scores_match_a_hand_count(tmp_path: Path) -> None:
    items = read_benchmark(write_data(tmp_path / "scienceqa"))
    replies = [
        "A",  # 5: right (SOC IMG G1-6)
        "The answer is B.",  # 11: wrong, the answer is C (LAN TXT IMG G7-12)
        "B. soft",  # 15: right (NAT TXT IMG G1-6)
        "Denver",  # 22: unread, so wrong (SOC IMG G7-12)
    ]
    metrics = score_benchmark(items, replies)
    assert (metrics["accuracy"], metrics["correct"], metrics["count"], metrics["unread"]) == (50.0, 2, 4, 1)
    assert list(metrics["categories"]) == list(CATEGORIES)
    assert metrics["categories"] == {
        "NAT": {"accuracy": 100.0, "correct": 1, "count": 1},
        "SOC": {"accuracy": 50.0, "correct": 1, "count": 2},
        "LAN": {"accuracy": 0.0, "correct": 0, "count": 1},
        "TXT": {"accuracy": 50.0, "correct": 1, "count": 2},
        "IMG": {"accuracy": 50.0, "correct": 2, "count": 4},
        "NO": {"accuracy": None, "correct": 0, "count": 0},  # evaluate_acc.py prints -1
        "G1-6": {"accuracy": 100.0, "correct": 2, "count": 2},
        "G7-12": {"accuracy": 0.0, "correct": 0, "count": 2},
    }
    json.dumps(metrics)  # a JSON object, as the runner writes it


def test_accuracy_is_the_share_times_100_and_unread_replies_are_counted(tmp_path: Path) -> None:
    items = read_benchmark(write_data(tmp_path / "scienceqa"))[:3]
    metrics = score_benchmark(items, ["A", "I am not sure.", "The answer is C."])  # C is past 15's 2 choices
    assert metrics["accuracy"] == 1 / 3 * 100 and metrics["accuracy"] != 100 / 3
    assert (metrics["correct"], metrics["unread"]) == (1, 2)


def test_the_spec() -> None:
    assert (SCIENCEQA.name, SCIENCEQA.read, SCIENCEQA.score) == ("scienceqa", read_benchmark, score_benchmark)
    assert SCIENCEQA.max_new_tokens == 128 and "problems.json" in SCIENCEQA.data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"question": None}, "problem 5: question must be a string, got None"),
        ({"hint": 3}, "problem 5: hint must be a string, got 3"),
        ({"choices": "north"}, "problem 5: choices must be a list of 1 to 5 strings, got 'north'"),
        ({"choices": []}, "problem 5: choices must be a list of 1 to 5 strings"),
        ({"choices": list("abcdef")}, "problem 5: choices must be a list of 1 to 5 strings"),
        ({"choices": ["a", 2]}, "problem 5: choices must be strings, got ['a', 2]"),
        ({"answer": 4}, "problem 5: answer must be the index of one of its 4 choices, got 4"),
        ({"answer": -1}, "answer must be the index of one of its 4 choices, got -1"),
        ({"answer": "0"}, "answer must be the index of one of its 4 choices, got '0'"),
        ({"answer": True}, "answer must be the index of one of its 4 choices, got True"),
        ({"image": ""}, "problem 5: image must be a file name or null, got ''"),
        ({"image": 1}, "problem 5: image must be a file name or null, got 1"),
        ({"subject": "science"}, "problem 5: subject must be one of natural science, social science"),
        ({"grade": "grade13"}, "problem 5: grade must be grade1 to grade12, got 'grade13'"),
        ({"grade": 2}, "problem 5: grade must be grade1 to grade12, got 2"),
    ],
)
def test_a_bad_problem_is_one_error_naming_it(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    folder = write_data(tmp_path / "scienceqa", problems={**PROBLEMS, "5": record(**changes)})
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        read_benchmark(folder)
    assert str(folder / "problems.json") in str(caught.value)


def test_a_problem_missing_keys_or_not_an_object_is_an_error(tmp_path: Path) -> None:
    short = {key: value for key, value in record().items() if key not in ("hint", "grade")}
    folder = write_data(tmp_path / "a", problems={**PROBLEMS, "5": short})
    with pytest.raises(UsageError, match=re.escape("problem 5 has no hint, grade")):
        read_benchmark(folder)
    folder = write_data(tmp_path / "b", problems={**PROBLEMS, "4": ["a list"]})
    with pytest.raises(UsageError, match=re.escape("problem 4 is not a JSON object")):
        read_benchmark(folder)


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ({"train": ["1"]}, "pid_splits.json has no test split"),
        ({"test": "5"}, "pid_splits.json: the test split must be a list of problem ids (strings)"),
        ({"test": [5]}, "pid_splits.json: the test split must be a list of problem ids (strings)"),
        ({"test": ["5", "99", "98"]}, "pid_splits.json lists test problem '99', which"),
    ],
)
def test_bad_splits_are_one_error_naming_the_file(tmp_path: Path, splits: object, message: str) -> None:
    folder = write_data(tmp_path / "scienceqa", splits=splits)
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        read_benchmark(folder)
    if "lists" in message:
        assert "(2 such)" in str(caught.value)


@pytest.mark.parametrize("name", ["problems.json", "pid_splits.json"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is not JSON: Expecting value: line 1 column 1"),
        (b'{"5": {', "is not JSON"),
        (b"[1, 2]", "is not a JSON object (id -> value)"),
        (b'"text"', "is not a JSON object"),
        (b'{"\xff": 1}', "not UTF-8 text; ScienceQA's"),
    ],
)
def test_a_bad_json_file_is_one_error_naming_it(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    folder = write_data(tmp_path / "scienceqa")
    (folder / name).write_bytes(content)
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        read_benchmark(folder)
    assert str(folder / name) in str(caught.value)


def test_missing_files_and_folders_are_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=re.escape("no problems.json in it or in")):
        read_benchmark(tmp_path)
    folder = write_data(tmp_path / "scienceqa")
    (folder / "pid_splits.json").unlink()
    with pytest.raises(UsageError, match=re.escape("pid_splits.json: no such file")):
        read_benchmark(folder)
    (folder / "pid_splits.json").mkdir()
    with pytest.raises(UsageError, match=re.escape("pid_splits.json: cannot read it")):
        read_benchmark(folder)
    folder = write_data(tmp_path / "no_images")
    (folder / "images" / "test").rmdir()
    with pytest.raises(UsageError, match=re.escape("no images/test/ folder for the test images")) as caught:
        read_benchmark(folder)
    assert "tools/download.sh" in str(caught.value.hint)
