"""A teacher's reply read and checked, the prompts built from annotations, the spec validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal.contract.errors import ConfigError, UsageError
from anymodal.data.kinds import (
    BUILTIN_KINDS,
    modality_words,
    pick_instruction,
    render_context,
    teacher_messages,
)
from anymodal.data.replies import (
    NearDuplicates,
    Rejected,
    check_finished,
    check_placeholders,
    question_answers,
    shingles,
)
from anymodal.data.spec import load_spec


def test_a_conversation_reply_is_read_into_question_answer_pairs() -> None:
    reply = (
        "Question:\nWhat animal is it?\n===\nAnswer:\nA dog.\n===\n"
        "question: Where is it?\n  ===  \nANSWER: In a park,\nnear a lake.\n"
    )
    assert question_answers(reply) == [
        ("What animal is it?", "A dog."),
        ("Where is it?", "In a park,\nnear a lake."),
    ]


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        ("It is a dog.", "block 1 starts with neither 'Question:' nor 'Answer:'"),
        ("Question:\nWhat?\n===\nQuestion:\nWhy?", "do not alternate from a question (block 2)"),
        ("Answer:\nA dog.", "do not alternate from a question (block 1)"),
        ("Question:\nWhat is it?", "do not alternate from a question (block 1)"),
        ("Question:\nWhat?\n===\nAnswer:\n", "block 2 (Answer) is empty"),
        ("===\n===", "no 'Question:'/'Answer:' blocks"),
    ],
)
def test_a_reply_in_another_form_is_unparseable(reply: str, detail: str) -> None:
    with pytest.raises(Rejected) as rejected:
        question_answers(reply)
    assert rejected.value.reason == "unparseable" and detail in rejected.value.detail


def test_empty_and_truncated_replies_are_rejected() -> None:
    assert check_finished("  A dog.\n", "stop") == "A dog."
    with pytest.raises(Rejected, match="empty"):
        check_finished(" \n", "stop")
    with pytest.raises(Rejected, match="truncated: the teacher stopped at max_tokens"):
        check_finished("Question:\nWhat", "length")


def test_placeholders_are_counted_per_input() -> None:
    known = ["<image>", "<audio>", "<video>"]
    check_placeholders(
        ["Which of <image> and <image> is red?", "And <audio>?"], ["<image>", "<image>", "<audio>"], known
    )
    with pytest.raises(Rejected, match="<image> written 1 times in the questions for 2 input"):
        check_placeholders(["Is <image> red?"], ["<image>", "<image>"], known)
    with pytest.raises(Rejected, match="placeholders"):
        check_placeholders(["What is it?"], ["<audio>"], known)
    # A placeholder of no input of the record (or any, where the kind puts them itself) is one too many.
    with pytest.raises(Rejected, match="<video> written 1 times in the questions for 0 input"):
        check_placeholders(["Is <image> like <video>?"], ["<image>"], known)
    with pytest.raises(Rejected, match="<image> written 1 times in the questions for 0 input"):
        check_placeholders(["What is in <image>?"], [], known)
    with pytest.raises(Rejected, match="<image> written 1 times in the answers for 0 input"):
        check_placeholders(["It is <image>."], [], known, "answers")


def test_near_duplicates_are_found_by_trigram_overlap_within_a_kind() -> None:
    index = NearDuplicates(threshold=0.8)
    first = shingles(["A brown dog leaps for a red frisbee in the park."])
    assert len(first) == 9  # 11 words, 9 trigrams; case and punctuation do not count
    index.keep("detail", "r1/detail", first)
    assert (
        index.similar("detail", shingles(["a brown dog leaps for a red frisbee in the park"])) == "r1/detail"
    )
    # the last word changed: 8 trigrams shared of 10 in all, a Jaccard similarity of exactly 0.8
    assert (
        index.similar("detail", shingles(["A brown dog leaps for a red frisbee in the garden."]))
        == "r1/detail"
    )
    assert (
        index.similar("detail", shingles(["A brown dog leaps for a red ball in the garden."])) is None
    )  # 5 of 13
    assert index.similar("conversation", first) is None  # another kind is not compared
    assert index.similar("detail", shingles(["A cat sleeps on a sofa by the window."])) is None
    assert index.similar("detail", frozenset()) is None


@pytest.mark.parametrize(("threshold", "found"), [(0.5, "a"), (0.51, None)])
def test_the_threshold_is_inclusive(threshold: float, found: str | None) -> None:
    index = NearDuplicates(threshold)
    index.keep("k", "a", frozenset({"x", "y", "z"}))
    assert index.similar("k", frozenset({"x", "y", "w"})) == found  # 2 shared of 4 in all: 0.5


def test_annotations_are_rendered_captions_first_then_regions_events_and_the_rest() -> None:
    annotations = {
        "scene": "park",
        "boxes": [{"label": "dog", "box": [0.1, 0.25, 0.5, 1]}, {"label": "tree"}, "a bench"],
        "captions": ["A dog runs.", "A dog in a park."],
        "timestamps": [{"start": 0, "end": 1.25, "label": "bark"}, {"start": "soon", "label": "howl"}],
        "weather": {"sky": "clear"},
    }
    assert render_context(annotations) == (
        "captions:\n- A dog runs.\n- A dog in a park.\n"
        "regions:\n- dog: [0.10, 0.25, 0.50, 1.00]\n- tree\n- a bench\n"
        'events:\n- 0.0-1.2 s: bark\n- {"start": "soon", "label": "howl"}\n'
        'scene: park\nweather: {"sky": "clear"}'
    )
    assert render_context({"caption": "One caption."}) == "captions:\n- One caption."


def test_the_teacher_is_prompted_as_llava_is_system_few_shot_then_the_record() -> None:
    messages = teacher_messages(BUILTIN_KINDS["conversation"], "captions:\n- A cat.", ["audio"])
    assert [message["role"] for message in messages] == ["system", "user", "assistant", "user"]
    assert "perceives a single audio" in messages[0]["content"] and "{modality}" not in messages[0]["content"]
    assert messages[2]["content"].startswith("Question:\nWhat animal is in the audio?\n===\nAnswer:")
    assert messages[-1] == {"role": "user", "content": "captions:\n- A cat."}
    # the built-in example replies parse as the replies they stand for
    for name in ("conversation", "reasoning"):
        assert question_answers(BUILTIN_KINDS[name].examples[0].reply)
    assert modality_words(["image", "image", "audio"]) == "image and audio"
    assert modality_words(["image", "audio", "video"]) == "image, audio and video"
    assert modality_words([]) == "input"


def test_an_instruction_is_picked_reproducibly_per_record() -> None:
    detail = BUILTIN_KINDS["detail"]
    picks = {pick_instruction(detail, f"r{n}", "detail", 0, ["image"]) for n in range(40)}
    assert len(picks) > 3 and all("{modality}" not in pick and "image" in pick for pick in picks)
    assert pick_instruction(detail, "r7", "detail", 0, ["image"]) == pick_instruction(
        detail, "r7", "detail", 0, ["image"]
    )
    assert [pick_instruction(detail, "r7", "detail", seed, ["audio"]) for seed in range(8)] != [
        pick_instruction(detail, "r7", "detail", 0, ["audio"])
    ] * 8


def test_a_spec_is_validated_with_every_problem_named(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "annotations: notes.jsonl\nkinds: [conversation, detial, story]\nconcurrency: 0\n"
        "define:\n  story: {system: Tell a story, reply: answer}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_spec(spec)
    message = str(error.value)
    assert message.startswith(f"3 problems in config {spec}: ")
    assert "kinds: unknown kind 'detial' (did you mean 'detail'?)" in message
    assert "define.story.instructions: a kind with reply: answer needs at least one" in message
    assert "concurrency: must be at least 1, got 0" in message and "docs/data.md" in message

    spec.write_text("annotations: notes.jsonl\nteacher: {modle: x}\n")
    with pytest.raises(ConfigError, match=r"teacher\.modle"):
        load_spec(spec)
    with pytest.raises(UsageError, match="generation spec not found: "):
        load_spec(tmp_path / "nope.yaml")


def test_a_spec_resolves_its_paths_and_takes_overrides(tmp_path: Path) -> None:
    spec = tmp_path / "specs" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text("annotations: ../data/notes.jsonl\nteacher: {model: a}\n")
    loaded = load_spec(spec, ["teacher.model=b", "kinds=[detail]"])
    assert loaded.annotations == tmp_path / "data" / "notes.jsonl"
    assert loaded.media_root == tmp_path / "data"
    assert loaded.spec.teacher.model == "b" and loaded.spec.kinds == ["detail"]
