"""Instruction data reading and validation: exact records, every problem kind, every file-level error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from anymodal.contract.errors import InputError, UsageError
from anymodal.contract.specs import Message
from anymodal.train.data import (
    PROBLEM_KINDS,
    DataReport,
    MediaRef,
    Problem,
    Record,
    check_report,
    read_records,
)

PLACEHOLDERS = {"image": "<image>", "audio": "<audio>"}


def touch(root: Path, *names: str) -> None:
    """Media files only need to exist; the reader never opens them."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\x00")


def write_jsonl(file: Path, *records: object) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("".join(json.dumps(record) + "\n" for record in records))
    return file


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": speaker, "value": text} for speaker, text in pairs]


def qa(question: str = "<image>\nWhat colour?", answer: str = "Red.") -> list[dict[str, str]]:
    return turns(("human", question), ("gpt", answer))


def problems_of(tmp_path: Path, record: object, **options: Any) -> list[tuple[str, str]]:
    """Problems of a one-record JSONL file; the record must then be invalid and reported by line."""
    touch(tmp_path, "a.png", "b.png", "c.wav")
    records, report = read_records(write_jsonl(tmp_path / "train.jsonl", record), **options)
    assert records == [] and report.valid == 0 and report.total == 1
    assert {problem.source for problem in report.problems} == {"train.jsonl:1"}
    return [(problem.kind, problem.detail) for problem in report.problems]


# --- reading valid records ----------------------------------------------------------------------


def test_llava_multi_turn_record_pairs_each_placeholder_with_its_path(tmp_path: Path) -> None:
    touch(tmp_path, "images/a.png", "images/b.png", "sounds/c.wav")
    record = {
        "id": "r1",
        "image": ["images/a.png", "images/b.png"],
        "audio": "sounds/c.wav",
        "conversations": turns(
            ("system", "Be brief."),
            ("human", "<image>\nWhat is this?"),
            ("gpt", "A cat, not an <image> of a dog."),
            ("user", "And <audio> next to <image>?"),
            ("assistant", "Purring."),
        ),
    }
    records, report = read_records(write_jsonl(tmp_path / "train.jsonl", record), placeholders=PLACEHOLDERS)

    assert records == [
        Record(
            source="train.jsonl:1",
            messages=(
                Message("system", "Be brief."),
                Message("user", "<image>\nWhat is this?"),
                Message("assistant", "A cat, not an <image> of a dog."),
                Message("user", "And <audio> next to <image>?"),
                Message("assistant", "Purring."),
            ),
            media=(
                MediaRef(1, "image", tmp_path / "images/a.png"),
                MediaRef(3, "audio", tmp_path / "sounds/c.wav"),
                MediaRef(3, "image", tmp_path / "images/b.png"),
            ),
        )
    ]
    assert (report.total, report.valid, report.problems) == (1, 1, [])
    assert report.summary() == "train.jsonl: 1 record, all valid"


def test_format_is_told_by_content_not_by_name(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    record = {"image": "a.png", "conversations": qa()}
    as_list = tmp_path / "list.json"
    as_list.write_text("\n  " + json.dumps([record, record], indent=2))
    as_lines = tmp_path / "lines.jsonl"
    as_lines.write_text(f"\n{json.dumps(record)}\n\n{json.dumps(record)}\n")
    misnamed = tmp_path / "misnamed.json"
    misnamed.write_text(f"{json.dumps(record)}\n{json.dumps(record)}")

    def sources(file: Path) -> list[str]:
        records, report = read_records(file, placeholders=PLACEHOLDERS)
        assert report.problems == []
        return [record.source for record in records]

    assert sources(as_list) == ["list.json[0]", "list.json[1]"]
    assert sources(as_lines) == ["lines.jsonl:2", "lines.jsonl:4"]
    assert sources(misnamed) == ["misnamed.json:1", "misnamed.json:2"]


def test_pandagpt_record_is_read_as_it_is(tmp_path: Path) -> None:
    touch(tmp_path / "images", "x.jpg", "y.jpg")
    data = tmp_path / "pandagpt.json"
    data.write_text(
        json.dumps(
            [
                {"image_name": "x.jpg", "conversation": qa("Describe it.", "A dog.")},
                {"image_name": "y.jpg", "conversation": [*turns(("system", "Hi.")), *qa("Why?", "Because.")]},
                {"image_name": "x.jpg", "conversation": qa("Compare <image> with it.", "Same.")},
            ]
        )
    )
    records, report = read_records(data, placeholders={"image": "<image>"}, media_root=tmp_path / "images")

    assert report.problems == []
    first, second, third = records
    assert first.messages == (Message("user", "<image>\nDescribe it."), Message("assistant", "A dog."))
    assert first.media == (MediaRef(0, "image", tmp_path / "images/x.jpg"),)
    assert second.messages[1] == Message("user", "<image>\nWhy?")
    assert second.media == (MediaRef(1, "image", tmp_path / "images/y.jpg"),)
    # a PandaGPT-named record that does carry its placeholder is left alone
    assert third.messages[0] == Message("user", "Compare <image> with it.")

    # ignored, image_name is plain metadata: no media, no placeholder put in
    records, report = read_records(data, placeholders={"image": "<image>"}, ignore_keys=("image_name",))
    assert [problem.source for problem in report.problems] == ["pandagpt.json[2]"]  # its <image> has no media
    assert records[0].messages[0] == Message("user", "Describe it.") and records[0].media == ()


def test_media_root_defaults_to_the_data_files_directory_and_can_be_given(tmp_path: Path) -> None:
    touch(tmp_path, "media/a.png")
    data = write_jsonl(tmp_path / "data/train.jsonl", {"image": "../media/a.png", "conversations": qa()})
    records, _ = read_records(data, placeholders=PLACEHOLDERS)
    assert records[0].media == (MediaRef(0, "image", tmp_path / "media/a.png"),)  # normalised, no ".."

    moved = write_jsonl(tmp_path / "data/moved.jsonl", {"image": "a.png", "conversations": qa()})
    records, _ = read_records(moved, placeholders=PLACEHOLDERS, media_root=str(tmp_path / "media"))
    assert records[0].media == (MediaRef(0, "image", tmp_path / "media/a.png"),)
    _, report = read_records(moved, placeholders=PLACEHOLDERS)
    assert report.problems == [
        Problem("missing file", "moved.jsonl:1", f"image file a.png not found under {tmp_path / 'data'}")
    ]


def test_absolute_media_paths_are_kept(tmp_path: Path) -> None:
    touch(tmp_path, "elsewhere/a.png")
    absolute = tmp_path / "elsewhere/a.png"
    data = write_jsonl(tmp_path / "data/train.jsonl", {"image": str(absolute), "conversations": qa()})
    records, _ = read_records(data, placeholders=PLACEHOLDERS, media_root=tmp_path / "media")
    assert records[0].media == (MediaRef(0, "image", absolute),)

    gone = str(tmp_path / "gone.png")
    assert problems_of(tmp_path, {"image": gone, "conversations": qa()}, placeholders=PLACEHOLDERS) == [
        ("missing file", f"image file {gone} not found")
    ]


def test_ignore_keys_are_not_media_fields(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    record = {"image": "a.png", "dataset": "coco", "tags": ["x", "y"], "conversations": qa()}
    data = write_jsonl(tmp_path / "train.jsonl", record)
    _, report = read_records(data, placeholders=PLACEHOLDERS)
    assert [problem.detail.split(" is ")[0] for problem in report.problems] == [
        "field 'dataset'",
        "field 'tags'",
    ]
    records, report = read_records(data, placeholders=PLACEHOLDERS, ignore_keys=("dataset", "tags"))
    assert report.problems == [] and len(records) == 1


def test_non_path_values_and_assistant_placeholders_are_plain_data(tmp_path: Path) -> None:
    record = {
        "id": 7,
        "score": 0.5,
        "meta": {"a": 1},
        "note": None,
        "conversations": qa("Hi.", "An <image>?"),
    }
    records, report = read_records(write_jsonl(tmp_path / "t.jsonl", record), placeholders=PLACEHOLDERS)
    assert report.problems == []
    assert records[0].media == ()


@pytest.mark.parametrize(
    ("placeholders", "text", "expected"),
    [
        (
            {"image": "<image>", "image2": "<image2>"},
            "<image2> then <image>",
            [("image2", "b"), ("image", "a")],
        ),
        # the sketch placeholder contains the image one: matched whole, the inner one not counted again
        (
            {"image": "<image>", "sketch": "<sketch><image></sketch>"},
            "<image> beside <sketch><image></sketch>",
            [("image", "a"), ("sketch", "b")],
        ),
    ],
)
def test_a_placeholder_containing_another_is_counted_once(
    tmp_path: Path, placeholders: dict[str, str], text: str, expected: list[tuple[str, str]]
) -> None:
    touch(tmp_path, "a.png", "b.png")
    second = next(modality for modality in placeholders if modality != "image")
    record = {"image": "a.png", second: "b.png", "conversations": qa(text)}
    records, report = read_records(write_jsonl(tmp_path / "t.jsonl", record), placeholders=placeholders)
    assert report.problems == []
    assert records[0].media == tuple(MediaRef(0, m, tmp_path / f"{name}.png") for m, name in expected)


# --- one problem kind per bad record ------------------------------------------------------------

GOOD_TURNS = qa()


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("just text", [("malformed", "record is a string, not an object")]),
        (42, [("malformed", "record is a number, not an object")]),
        ({"id": 1}, [("malformed", "no 'conversations' list")]),
        ({"conversations": "hi"}, [("malformed", "'conversations' is a string, not a list")]),
        (
            {"conversations": GOOD_TURNS, "conversation": GOOD_TURNS},
            [("malformed", "has both 'conversations' and 'conversation'")],
        ),
        (
            {"conversations": ["hi", *GOOD_TURNS]},
            [("malformed", "conversations[0] is a string, not an object")],
        ),
        ({"conversation": [{"from": "human"}]}, [("malformed", "conversation[0] has no string 'value'")]),
        (
            {"conversations": [{"value": 3}]},
            [("malformed", "conversations[0] has no string 'from' or 'value'")],
        ),
        (
            {"conversations": turns(("human", "Hi."), ("bot", "Hello."))},
            [
                (
                    "malformed",
                    "conversations[1] has unknown role 'bot' (expected human, user, gpt, assistant, system)",
                )
            ],
        ),
        (
            {"conversations": turns(("Human", "Hi."), ("gpt", "Hello."))},
            [
                (
                    "malformed",
                    "conversations[0] has unknown role 'Human' (expected human, user, gpt, assistant, system)"
                    " (did you mean 'human'?)",
                )
            ],
        ),
        ({"image": [], "conversations": qa("Hi.")}, [("malformed", "field 'image' is an empty list")]),
        (
            {"image": ["a.png", 3], "conversations": qa("<image><image>")},
            [("malformed", "field 'image' holds something that is not a path string")],
        ),
        (
            {"image": "a.png", "image_name": "b.png", "conversations": qa()},
            [("malformed", "has both 'image' and 'image_name'")],
        ),
        ({"conversations": qa("Hi.", " \n")}, [("empty turn", "conversations[1] (gpt) is empty")]),
        (
            {"conversations": turns(("human", "Hi."), ("system", "Hey."))},
            [("no answer", "'conversations' has no gpt/assistant turn")],
        ),
        (
            {"image": "images/nope.png", "conversations": qa()},
            [("missing file", "image file images/nope.png not found under ROOT")],
        ),
        (
            {"imgae": "a.png", "conversations": qa("Hi.")},
            [
                (
                    "unknown modality",
                    "field 'imgae' is not an enabled modality (enabled: image, audio)"
                    " (did you mean 'image'?)",
                )
            ],
        ),
        (
            {"image": "a.png", "conversations": qa("<image> and <image>")},
            [("placeholder without media", "2 '<image>' placeholders in user turns but 1 image path")],
        ),
        (
            {"conversations": qa("<audio>?")},
            [("placeholder without media", "1 '<audio>' placeholder in user turns but no 'audio' field")],
        ),
        (
            {"image": ["a.png", "b.png"], "conversations": qa()},
            [("media without placeholder", "2 image paths but 1 '<image>' placeholder in user turns")],
        ),
        (
            {"audio": "c.wav", "conversations": qa("Listen.")},
            [("media without placeholder", "1 audio path but 0 '<audio>' placeholders in user turns")],
        ),
        (
            {"image": "gone.png", "conversations": turns(("human", "<audio>"), ("human", " "))},
            [
                ("empty turn", "conversations[1] (human) is empty"),
                ("no answer", "'conversations' has no gpt/assistant turn"),
                ("missing file", "image file gone.png not found under ROOT"),
                ("media without placeholder", "1 image path but 0 '<image>' placeholders in user turns"),
                ("placeholder without media", "1 '<audio>' placeholder in user turns but no 'audio' field"),
            ],
        ),
    ],
)
def test_each_bad_record_is_reported_with_its_kind_and_what_is_wrong(
    tmp_path: Path, record: object, expected: list[tuple[str, str]]
) -> None:
    found = problems_of(tmp_path, record, placeholders=PLACEHOLDERS)
    assert found == [(kind, detail.replace("ROOT", str(tmp_path))) for kind, detail in expected]
    assert all(kind in PROBLEM_KINDS for kind, _ in found)


def test_pandagpt_image_needs_the_image_modality(tmp_path: Path) -> None:
    record = {"image_name": "a.png", "conversation": qa("Hi.")}
    assert problems_of(tmp_path, record, placeholders={"audio": "<audio>"}) == [
        (
            "unknown modality",
            "field 'image_name' needs modality 'image', which is not an enabled modality (enabled: audio)",
        )
    ]


def test_pandagpt_image_without_a_user_turn_has_nowhere_to_go(tmp_path: Path) -> None:
    record = {"image_name": "a.png", "conversation": turns(("gpt", "Hello."))}
    assert problems_of(tmp_path, record, placeholders=PLACEHOLDERS) == [
        ("media without placeholder", "1 image path but 0 '<image>' placeholders in user turns")
    ]


# --- the report ---------------------------------------------------------------------------------


@pytest.fixture
def mixed_report(tmp_path: Path) -> DataReport:
    touch(tmp_path, "a.png")
    data = write_jsonl(
        tmp_path / "train.jsonl",
        {"image": "a.png", "conversations": qa()},
        {"image": "x.png", "conversations": qa()},
        {"conversations": qa("Hi.", "")},
        {"image": "y.png", "conversations": qa()},
        {"image": "z.png", "conversations": qa(answer=" ")},
    )
    records, report = read_records(data, placeholders=PLACEHOLDERS, media_root=Path("/m"))
    assert records == []  # a.png is not under /m either
    return report


def test_counts_and_summary_give_the_exact_line(mixed_report: DataReport) -> None:
    assert mixed_report.counts() == {"empty turn": 2, "missing file": 4}
    assert list(mixed_report.counts()) == ["empty turn", "missing file"]  # PROBLEM_KINDS order
    assert mixed_report.summary(examples=2) == (
        "train.jsonl: 5 records, 0 valid, 5 invalid: "
        "empty turn 2 (e.g. train.jsonl:3: conversations[1] (gpt) is empty; "
        "train.jsonl:5: conversations[1] (gpt) is empty), "
        "missing file 4 (e.g. train.jsonl:1: image file a.png not found under /m; "
        "train.jsonl:2: image file x.png not found under /m)"
    )
    assert mixed_report.summary(examples=0) == (
        "train.jsonl: 5 records, 0 valid, 5 invalid: empty turn 2, missing file 4"
    )


def test_summary_counts_invalid_records_not_problems(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    data = write_jsonl(
        tmp_path / "train.jsonl",
        {"image": "a.png", "conversations": qa()},
        {"image": "gone.png", "conversations": qa("Hi.", "")},
    )
    _, report = read_records(data, placeholders=PLACEHOLDERS)
    assert report.summary(examples=1) == (
        "train.jsonl: 2 records, 1 valid, 1 invalid: "
        "empty turn 1 (e.g. train.jsonl:2: conversations[1] (gpt) is empty), "
        f"missing file 1 (e.g. train.jsonl:2: image file gone.png not found under {tmp_path}), "
        "media without placeholder 1 "
        "(e.g. train.jsonl:2: 1 image path but 0 '<image>' placeholders in user turns)"
    )


def test_to_dict_is_json_able_and_complete(mixed_report: DataReport) -> None:
    written = json.loads(json.dumps(mixed_report.to_dict()))
    assert {key: written[key] for key in ("total", "valid", "invalid", "counts")} == {
        "total": 5,
        "valid": 0,
        "invalid": 5,
        "counts": {"empty turn": 2, "missing file": 4},
    }
    assert written["file"] == str(mixed_report.file)
    assert written["problems"][0] == {
        "kind": "missing file",
        "source": "train.jsonl:1",
        "detail": "image file a.png not found under /m",
    }
    assert len(written["problems"]) == 6


def test_check_report_fails_or_skips_as_asked(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    good = {"image": "a.png", "conversations": qa()}
    data = write_jsonl(tmp_path / "train.jsonl", good, {"conversations": qa("Hi.", "")})
    _, report = read_records(data, placeholders=PLACEHOLDERS)

    with pytest.raises(UsageError) as failed:
        check_report(report, "fail")
    assert failed.value.message == report.summary()
    assert failed.value.hint is not None and "skip" in failed.value.hint
    check_report(report, "skip")

    _, clean = read_records(write_jsonl(tmp_path / "clean.jsonl", good), placeholders=PLACEHOLDERS)
    check_report(clean, "fail")

    with pytest.raises(
        UsageError, match=r"on_invalid must be one of fail, skip, not 'skpi' \(did you mean 'skip'\?\)"
    ):
        check_report(report, "skpi")


def test_check_report_refuses_to_skip_every_record(mixed_report: DataReport) -> None:
    with pytest.raises(UsageError) as failed:
        check_report(mixed_report, "skip")
    assert failed.value.message == mixed_report.summary()


# --- file-level errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("train.jsonl", None, "data file FILE not found"),
        ("train.jsonl", "", "data file FILE is empty"),
        ("train.json", " \n\t\n", "data file FILE is empty"),
        (
            "train.json",
            '[\n  {"conversations": []},\n  {oops}\n]',
            "data file FILE is not valid JSON: "
            "Expecting property name enclosed in double quotes at line 3 column 4",
        ),
        (
            "train.jsonl",
            '{"conversations": []}\n\n{"conversations": [}\n',
            "data file FILE line 3 is not valid JSON: Expecting value at column 20",
        ),
        ("train.json", '{\n  "data": [\n  ]\n}\n', "data file FILE: top level is an object, not a list"),
        ("train.json", " [ ] ", "data file FILE has no records"),
    ],
)
def test_an_unusable_file_raises_input_error_naming_it(
    tmp_path: Path, name: str, content: str | None, expected: str
) -> None:
    file = tmp_path / name
    if content is not None:
        file.write_text(content)
    with pytest.raises(InputError) as raised:
        read_records(file, placeholders=PLACEHOLDERS)
    assert raised.value.message == expected.replace("FILE", str(file))


def test_importing_the_module_does_not_import_torch() -> None:
    code = "import sys, anymodal.train.data; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
