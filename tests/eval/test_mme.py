"""MME's official scoring (calculation.py): the reply reading, the figures, the release's files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anymodal.contract.errors import UsageError
from anymodal.eval.benchmark import read_items
from anymodal.eval.benchmarks.mme import (
    MME,
    PERCEPTION,
    read_benchmark,
    read_question_file,
    read_reply,
    score_benchmark,
    score_subtask,
)

ASKED = "\nAnswer the question using a single word or phrase."


@pytest.mark.parametrize(
    ("reply", "read"),
    [
        ("Yes", "yes"),
        ("NO", "no"),  # lowercased first
        ("Yes, it is.", "yes"),
        ("No, there is not.", "no"),
        ("Yesterday", "yes"),  # only the first 4 characters are looked at: "yest" holds "yes"
        ("Not sure", "no"),  # "not " holds "no"
        ("snow", "no"),  # so does "snow"
        ("The answer is yes", "other"),  # "the " holds neither
        (" yes", "yes"),  # " yes" still does
        ("  Yes", "other"),  # "  ye" does not
        ("\n\nNo", "no"),  # line breaks are deleted first, as the tool's readme asks
        ("ye\r\ns", "yes"),
        ("", "other"),
    ],
)
def test_a_reply_is_read_as_calculation_py_reads_it(reply: str, read: str) -> None:
    assert read_reply(reply) == read


def test_the_figures_match_a_hand_count() -> None:
    images = ["a.jpg", "a.jpg", "b.jpg", "b.jpg", "c.jpg", "c.jpg"]
    answers = ["yes", "no", "yes", "no", "yes", "no"]
    # a: both right; b: one right and one "other"; c: both wrong.
    replies = ["Yes", "No", "Yes", "Maybe", "No", "Yes"]
    scores = score_subtask(replies, answers, images)
    assert (scores.questions, scores.images, scores.correct, scores.both_correct, scores.other) == (
        6,
        3,
        3,
        1,
        1,
    )
    assert scores.acc == 50.0
    # the share first, then ×100, as calculation.py does: 1 / 3 * 100, not 100 / 3 (a bit apart)
    assert scores.acc_plus == 1 / 3 * 100 and scores.acc_plus != 100 / 3
    assert scores.score == 50.0 + 1 / 3 * 100
    assert scores.to_dict() == {
        "acc": 50.0,
        "acc_plus": 1 / 3 * 100,
        "score": 50.0 + 1 / 3 * 100,
        "questions": 6,
        "images": 3,
        "other": 1,
    }


def test_an_image_with_one_scored_question_is_never_right_in_both() -> None:
    scores = score_subtask(["Yes", "No", "Yes"], ["yes", "no", "yes"], ["a.jpg", "a.jpg", "b.jpg"])
    assert (scores.images, scores.both_correct, scores.acc, scores.acc_plus) == (2, 1, 100.0, 50.0)


def test_replies_answers_and_images_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 replies for 3 answers and 3 images"):
        score_subtask(["Yes", "No"], ["yes", "no", "yes"], ["a", "a", "b"])
    with pytest.raises(ValueError, match="no replies"):
        score_subtask([], [], [])


def release(root: Path, files: dict[str, str | bytes]) -> Path:
    """A release folder holding ``files`` (relative path: content; images are empty files)."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    return root


def pair(first: str, second: str) -> str:
    return f"{first} Please answer yes or no.\tYes\n{second} Please answer yes or no.\tNo\n"


SMALL_RELEASE: dict[str, str | bytes] = {
    # flat: each image beside its questions
    "OCR/0002.jpg": "",
    "OCR/0002.txt": pair(
        'Is the word in the logo "c\'est cheese"?', 'Is the word in the logo "crest cheese"?'
    ),
    "OCR/0001.jpg": "",
    "OCR/0001.txt": pair('Is the word in the logo "angie\'s"?', 'Is the word in the logo "angle\'s"?'),
    # images/ and questions_answers_YN/; CRLF line ends and the release's double space before the prompt
    "scene/images/Places365_val_00000001.jpg": "",
    "scene/questions_answers_YN/Places365_val_00000001.txt": (
        "Is this photo taken in a place of greenhouse indoor?  Please answer yes or no.\tYes\r\n"
        "Is this photo taken in a place of waiting room? Please answer yes or no.\tNo\r\n"
    ),
    # a .png image, and lines stripped as LLaVA strips them
    "code_reasoning/0001.png": "",
    "code_reasoning/0001.txt": (
        "\ufeffThe image shows a python code. Is the output of the code 'Hello'? Please answer yes or no."
        "\tYes  \n"
        "The image shows a python code. Is the output of the code 'World'? Please answer yes or no.\tno\n\n"
    ),
    "code_reasoning/._0001.txt": b"\x00\x05\x16\x07\xff",  # macOS's hidden copy: not a question file
    "eval_tool/readme.txt": "not a subtask",
}


def test_a_release_is_read_as_published_and_asked_as_llava_1_5_asks(tmp_path: Path) -> None:
    root = release(tmp_path / "MME_Benchmark_release_version", SMALL_RELEASE)
    items = read_benchmark(root)
    # subtasks in calculation.py's order (scene before OCR, perception before cognition), files by name
    assert [item.id for item in items] == [
        "scene/Places365_val_00000001.jpg/0",
        "scene/Places365_val_00000001.jpg/1",
        "OCR/0001.jpg/0",
        "OCR/0001.jpg/1",
        "OCR/0002.jpg/0",
        "OCR/0002.jpg/1",
        "code_reasoning/0001.png/0",
        "code_reasoning/0001.png/1",
    ]
    assert items[0].question == "Is this photo taken in a place of greenhouse indoor?" + ASKED
    assert items[2].question == 'Is the word in the logo "angie\'s"?' + ASKED
    assert items[6].question == "The image shows a python code. Is the output of the code 'Hello'?" + ASKED
    assert items[0].media == (("image", root / "scene/images/Places365_val_00000001.jpg"),)
    assert items[7].media == (("image", root / "code_reasoning/0001.png"),)
    assert [dict(item.fields) for item in items[6:]] == [
        {"subtask": "code_reasoning", "image": "0001.png", "answer": "yes"},
        {"subtask": "code_reasoning", "image": "0001.png", "answer": "no"},
    ]
    assert read_items(MME, root) == items  # ids unique, as the runner checks


def test_the_scores_match_a_hand_count(tmp_path: Path) -> None:
    items = read_benchmark(release(tmp_path / "release", SMALL_RELEASE))
    replies = [
        *("Yes", "No"),  # scene: both right: 100 + 100
        *("Yes", "Yes"),  # OCR 0001: one right
        *("No", "No"),  # OCR 0002: one right; OCR: acc 50, acc_plus 0
        *("yes", "I don't know"),  # code_reasoning: one right, one other: 50 + 0
    ]
    metrics = score_benchmark(items, replies)
    perception, cognition = metrics["perception"], metrics["cognition"]
    assert perception["subtasks"]["scene"] == {
        "acc": 100.0,
        "acc_plus": 100.0,
        "score": 200.0,
        "questions": 2,
        "images": 1,
        "other": 0,
    }
    assert perception["subtasks"]["OCR"]["score"] == 50.0 and perception["subtasks"]["OCR"]["images"] == 2
    assert list(perception["subtasks"]) == ["scene", "OCR"]
    assert perception["total"] == 250.0
    assert perception["missing"] == [name for name in PERCEPTION if name not in ("scene", "OCR")]
    assert cognition["subtasks"]["code_reasoning"]["other"] == 1
    assert cognition["total"] == 50.0
    assert cognition["missing"] == ["commonsense_reasoning", "numerical_calculation", "text_translation"]


def test_the_subtask_folders_may_be_in_mme_benchmark(tmp_path: Path) -> None:
    root = release(tmp_path / "MME_Benchmark_release_version" / "MME_Benchmark", SMALL_RELEASE)
    assert len(read_benchmark(root.parent)) == 8


def test_the_spec() -> None:
    assert (MME.name, MME.read, MME.score, MME.max_new_tokens) == ("mme", read_benchmark, score_benchmark, 16)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no questions (the file is empty)"),
        ("\n  \n", "no questions (the file is empty)"),
        ("Is it red? Please answer yes or no. Yes\n", "line 1 has no tab, where it needs one"),
        ("Is it red?\tPlease answer yes or no.\tYes\n", "line 1 has 2 tabs, where it needs one"),
        ("Is it red?\tYes\nIs it blue?\tMaybe\n", "line 2: the answer must be Yes or No, got 'Maybe'"),
        ("Is it red?\tYes\nIs it blue?\t No\n", "line 2: the answer must be Yes or No, got ' No'"),
        ("Is it red?\tYes\n", "1 questions, where MME has two about each image"),
        ("Is it red?\tYes\nIs it blue?\tNo\nIs it green?\tNo\n", "3 questions, where MME has two"),
        (b"Is it red?\tYes\nIs it bl\xe9?\tNo\n", "line 2: not UTF-8 text"),
    ],
)
def test_a_bad_question_file_is_one_error_naming_it(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "0001.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        read_question_file(path)
    assert str(path) in str(caught.value)


def test_a_bad_question_file_in_a_release_is_reported_from_read_benchmark(tmp_path: Path) -> None:
    root = release(tmp_path, {"color/0001.jpg": "", "color/0001.txt": "Is it red?\tYes\nIs it blue?\n"})
    with pytest.raises(UsageError, match=re.escape(f"{root / 'color/0001.txt'}, line 2 has no tab")):
        read_benchmark(root)


def test_a_missing_or_unreadable_question_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such MME question file"):
        read_question_file(tmp_path / "0001.txt")
    (tmp_path / "0002.txt").mkdir()
    with pytest.raises(UsageError, match="cannot read it as an MME question file"):
        read_question_file(tmp_path / "0002.txt")


def test_a_question_file_without_its_image_is_an_error(tmp_path: Path) -> None:
    root = release(tmp_path, {"OCR/0001.txt": pair("Is it A?", "Is it B?"), "OCR/0001.gif": ""})
    with pytest.raises(
        UsageError, match=re.escape("its image is missing (no 0001.jpg or 0001.png in")
    ) as caught:
        read_benchmark(root)
    assert str(root / "OCR/0001.txt") in str(caught.value)
    root = release(
        tmp_path / "split",
        {"artwork/images/9.jpg": "", "artwork/questions_answers_YN/10.txt": pair("Is it A?", "Is it B?")},
    )
    with pytest.raises(UsageError, match=re.escape(f"no 10.jpg or 10.png in {root / 'artwork/images'}")):
        read_benchmark(root)


def test_a_subtask_folder_not_as_published_is_an_error(tmp_path: Path) -> None:
    root = release(
        tmp_path / "a", {"landmark/images/1.jpg": "", "landmark/1.txt": pair("Is it A?", "Is it B?")}
    )
    with pytest.raises(UsageError, match=re.escape("has images/ but no questions_answers_YN/")):
        read_benchmark(root)
    root = release(tmp_path / "b", {"count/0001.jpg": ""})
    with pytest.raises(UsageError, match=re.escape(f"{root / 'count'}: no MME question files")):
        read_benchmark(root)


def test_a_folder_without_subtasks_or_no_folder_is_an_error(tmp_path: Path) -> None:
    root = release(tmp_path / "release", {"eval_tool/calculation.py": "", "Existence/0001.jpg": ""})
    with pytest.raises(UsageError, match="none of MME's subtask folders") as caught:
        read_benchmark(root)
    assert "existence, count, position" in str(caught.value) and str(root / "MME_Benchmark") in str(
        caught.value
    )
    with pytest.raises(UsageError, match="no such folder"):
        read_benchmark(tmp_path / "absent")
    with pytest.raises(UsageError, match=re.escape("file.txt: not a folder")):
        read_benchmark(release(tmp_path, {"file.txt": ""}) / "file.txt")
