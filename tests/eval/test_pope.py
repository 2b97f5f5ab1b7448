"""POPE's official scoring: the reply reading, the figures, the question files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from anymodal.contract.errors import UsageError
from anymodal.eval.benchmarks.pope import read_questions, reply_is_yes, score, split_of


@pytest.mark.parametrize(
    ("reply", "yes"),
    [
        ("Yes, there is a snowboard in the image.", True),
        ("No, there is not.", False),
        ("There is no snowboard in the image.", False),
        ("The image does not show one.", False),
        ("no, none", False),  # the comma goes before the words are split
        ("Yes. No, not at all.", True),  # only the first sentence counts
        ("Not at all.", True),  # "Not" is not one of the official words: a yes, as there
        ("I don't see one.", True),  # nor is "don't"
        ("No\nthere is none", True),  # words are split on spaces only
        ("", True),  # an empty reply counts as yes
    ],
)
def test_a_reply_is_read_as_the_official_script_reads_it(reply: str, yes: bool) -> None:
    assert reply_is_yes(reply) is yes


def test_the_figures_match_a_hand_count() -> None:
    labels = ["yes"] * 4 + ["no"] * 6
    replies = ["Yes."] * 3 + ["No."] + ["Yes, it is."] + ["No, there is not."] * 5
    scores = score(replies, labels)
    # TP 3, FN 1, FP 1, TN 5.
    assert (scores.true_positive, scores.false_negative, scores.false_positive, scores.true_negative) == (
        3,
        1,
        1,
        5,
    )
    assert scores.accuracy == pytest.approx(0.8)
    assert scores.precision == pytest.approx(0.75) and scores.recall == pytest.approx(0.75)
    assert scores.f1 == pytest.approx(0.75)
    assert scores.yes_ratio == pytest.approx(0.4) and scores.count == 10


def test_a_model_that_never_says_yes_scores_zero_precision_instead_of_crashing() -> None:
    scores = score(["No."] * 4, ["yes", "yes", "no", "no"])
    assert (scores.precision, scores.recall, scores.f1, scores.yes_ratio) == (0.0, 0.0, 0.0, 0.0)
    assert scores.accuracy == pytest.approx(0.5)


def test_replies_and_labels_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 replies for 3 labels"):
        score(["Yes.", "No."], ["yes", "no", "yes"])
    with pytest.raises(ValueError, match="no replies"):
        score([], [])


def write(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


QUESTION = {
    "question_id": 1,
    "image": "COCO_val2014_000000310196.jpg",
    "text": "Is there a dog in the image?",
}


def test_a_question_file_is_read_as_published(tmp_path: Path) -> None:
    path = write(
        tmp_path / "coco_pope_adversarial.json",
        [{**QUESTION, "label": "yes"}, {**QUESTION, "question_id": 2, "label": "no"}],
    )
    questions = read_questions(path)
    assert [(q.question_id, q.label) for q in questions] == [(1, "yes"), (2, "no")]
    assert questions[0].image == "COCO_val2014_000000310196.jpg" and split_of(path) == "adversarial"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no questions (the file is empty)"),
        ("{not json\n", "line 1 is not JSON"),
        ("[1, 2]\n", "line 1 is not a JSON object"),
        (json.dumps({"question_id": 1, "text": "?"}) + "\n", "line 1 has no image, label"),
        (json.dumps({**QUESTION, "label": "maybe"}) + "\n", "label must be yes or no, got 'maybe'"),
    ],
)
def test_a_bad_question_file_is_one_error_naming_it(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "coco_pope_random.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        read_questions(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_or_a_file_not_named_for_a_split_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file; a POPE question file was expected here"):
        read_questions(tmp_path / "coco_pope_random.json")
    with pytest.raises(UsageError, match=re.escape("coco_pope_<split>.json")):
        split_of(tmp_path / "questions.json")
    assert split_of(Path("coco_pope_popular.json")) == "popular"
    folder = tmp_path / "coco_pope_popular.json"
    folder.mkdir()
    with pytest.raises(UsageError, match="cannot read it as a POPE question file"):
        read_questions(folder)


def test_a_question_holding_a_line_separator_stays_one_line(tmp_path: Path) -> None:
    text = json.dumps(
        {**QUESTION, "text": "Is there a dog\u2028in the image?", "label": "no"}, ensure_ascii=False
    )
    path = tmp_path / "coco_pope_random.json"
    path.write_text(text + "\n", encoding="utf-8")
    assert [q.text for q in read_questions(path)] == ["Is there a dog\u2028in the image?"]
