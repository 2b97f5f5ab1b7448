"""Text-only conversations of the demo model's training data: greetings, and questions with no file."""

from __future__ import annotations

import json
from pathlib import Path

from anymodal.demo.language import OPEN_QUESTIONS
from anymodal.demo.small_talk import GREETINGS, INTRODUCTION, NO_INPUT, small_talk
from anymodal.train.data import read_records


def test_greetings_and_fileless_questions_take_turns_with_their_one_answer() -> None:
    records = small_talk(40, seed=0)
    assert [record["id"] for record in records[:3]] == ["text-00000", "text-00001", "text-00002"]
    asked = [record["conversations"][0]["value"] for record in records]
    answered = [record["conversations"][1]["value"] for record in records]
    assert answered == [INTRODUCTION, NO_INPUT] * 20
    fileless = {q for kinds in OPEN_QUESTIONS.values() for phrasings in kinds.values() for q in phrasings}
    assert all(question in GREETINGS for question in asked[::2])
    assert all(question in fileless for question in asked[1::2])
    assert len(set(asked[::2])) > 6 and len(set(asked[1::2])) > 12  # drawn, not one phrasing over and over


def test_the_same_seed_gives_the_same_talk_and_another_seed_other_talk() -> None:
    assert small_talk(30, seed=4) == small_talk(30, seed=4)
    assert small_talk(30, seed=4) != small_talk(30, seed=5)
    assert small_talk(10, seed=4) == small_talk(30, seed=4)[:10]


def test_the_trainer_reads_them_as_valid_text_only_records(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in small_talk(12, seed=0)))
    records, report = read_records(data, placeholders={"image": "<image>", "audio": "<audio>"})
    assert len(records) == 12 and not report.problems
    assert all(record.media == () for record in records)
    assert [message.role for message in records[0].messages] == ["user", "assistant"]
