"""``anymodal data check``'s statistics: the trainer's report kept, hand-counted values, the exact table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anymodal.contract.errors import InputError
from anymodal.data.check import DataStatistics, ModalityCount, Spread, data_statistics, format_statistics

PLACEHOLDERS = {"image": "<image>", "audio": "<audio>"}


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": speaker, "value": text} for speaker, text in pairs]


#: Six records in the trainer's LLaVA format: four valid (one image, two images and a sound, text
#: only, PandaGPT), then a missing file and a placeholder without media.
RECORDS: list[dict[str, object]] = [
    {
        "id": "one-image",
        "image": "a.png",
        "conversations": turns(("human", "<image>\nWhat colour is the ball?"), ("gpt", "It is red.")),
        "meta": {"kind": "conversation", "source": "ann-1"},
    },
    {
        "id": "three-inputs",
        "image": ["a.png", "b.png"],
        "audio": "c.wav",
        "conversations": turns(
            ("human", "<image><image>Which one matches the sound <audio>"),
            ("gpt", "The second one."),
            ("human", "Why?"),
            ("gpt", "Both show a dog but only the second one barks."),
        ),
        "meta": {"kind": "reasoning"},
    },
    {
        "id": "text-only",
        "conversations": turns(
            ("system", "Be brief."),
            ("human", "Say hi."),
            ("gpt", "Hi."),
            ("human", "Again."),
            ("gpt", "Hi again."),
        ),
        "meta": {"kind": "conversation"},
    },
    {
        "id": "pandagpt",
        "image_name": "b.png",
        "conversation": turns(("human", "Describe it."), ("gpt", "A small brown dog on grass.")),
        "meta": {"source": "ann-4"},
    },
    {"id": "missing", "image": "gone.png", "conversations": turns(("human", "<image>"), ("gpt", "A."))},
    {"id": "no-media", "conversations": turns(("human", "<image>\nWhat is it?"), ("gpt", "A cat."))},
]


def write_media(root: Path) -> None:
    """Bytes that are no image or sound: the check must only look for the files, never decode them."""
    for name in ("a.png", "b.png", "c.wav"):
        (root / name).write_bytes(b"not media")


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    write_media(tmp_path)
    file = tmp_path / "train.jsonl"
    file.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
    return file


def summary_of(jsonl: Path) -> str:
    return (
        "train.jsonl: 6 records, 4 valid, 2 invalid: "
        f"missing file 1 (e.g. train.jsonl:5: image file gone.png not found under {jsonl.parent}), "
        "placeholder without media 1 (e.g. train.jsonl:6: 1 '<image>' placeholder in user turns but "
        "no 'image' field)"
    )


def test_statistics_count_the_valid_records_of_a_jsonl_file(jsonl: Path) -> None:
    stats = data_statistics(jsonl, PLACEHOLDERS)

    assert stats.report.total == 6 and stats.report.valid == 4
    assert stats.report.counts() == {"missing file": 1, "placeholder without media": 1}
    assert stats.conversations == 4
    # Assistant turns per record: 1, 2, 2, 1.
    assert stats.turns == Spread(count=4, min=1, median=1.5, mean=1.5, max=2)
    # User messages 5, 5, 1, 2, 1, 2 words: placeholders are not words, even touching one
    # ("<image><image>Which"), nor is the placeholder put before PandaGPT's text; system not counted.
    assert stats.user_words == Spread(count=6, min=1, median=2.0, mean=16 / 6, max=5)
    # Assistant messages 3, 3, 10, 1, 2, 6 words.
    assert stats.assistant_words == Spread(count=6, min=1, median=3.0, mean=25 / 6, max=10)
    assert stats.modalities == {
        "image": ModalityCount(records=3, inputs=4),
        "audio": ModalityCount(records=1, inputs=1),
    }
    assert stats.inputs_per_record == {0: 1, 1: 2, 3: 1}
    assert stats.text_only == 1
    # The PandaGPT record's meta has no kind; the invalid records are not counted.
    assert stats.kinds == {"conversation": 2, "reasoning": 1}


def test_the_table_puts_the_report_first_then_aligned_counts(jsonl: Path) -> None:
    assert format_statistics(data_statistics(jsonl, PLACEHOLDERS)).split("\n") == [
        summary_of(jsonl),
        "conversations      4",
        "image              3 records, 4 inputs",
        "audio              1 record, 1 input",
        "text only          1 record",
        "inputs per record  0: 1 record, 1: 2 records, 3: 1 record",
        "kinds              conversation 2, reasoning 1",
        "                   count  min  median  mean  max",
        "assistant turns        4    1     1.5   1.5    2",
        "user words             6    1       2   2.7    5",
        "assistant words        6    1       3   4.2   10",
    ]


def test_the_json_form_holds_the_report_and_every_statistic(jsonl: Path) -> None:
    stats = data_statistics(jsonl, PLACEHOLDERS)
    as_json = json.loads(json.dumps(stats.to_dict()))

    assert as_json == {
        "report": stats.report.to_dict(),
        "conversations": 4,
        "turns": {"count": 4, "min": 1, "median": 1.5, "mean": 1.5, "max": 2},
        "user_words": {"count": 6, "min": 1, "median": 2.0, "mean": 2.67, "max": 5},
        "assistant_words": {"count": 6, "min": 1, "median": 3.0, "mean": 4.17, "max": 10},
        "modalities": {"image": {"records": 3, "inputs": 4}, "audio": {"records": 1, "inputs": 1}},
        "inputs_per_record": {"0": 1, "1": 2, "3": 1},
        "text_only": 1,
        "kinds": {"conversation": 2, "reasoning": 1},
    }
    assert as_json["report"]["invalid"] == 2


def test_a_json_list_without_meta_has_no_kinds_and_no_text_only_line(tmp_path: Path) -> None:
    write_media(tmp_path)
    file = tmp_path / "train.json"
    records = [
        {
            "image": ["a.png", "b.png"],
            "conversations": turns(("human", "<image> <image> Same?"), ("gpt", "No.")),
        },
        {"image": "a.png", "conversations": turns(("human", "<image> <image> Same?"), ("gpt", "Yes."))},
    ]
    file.write_text(json.dumps(records, indent=2))

    stats = data_statistics(file, PLACEHOLDERS)

    assert stats == DataStatistics(
        report=stats.report,
        conversations=1,
        turns=Spread(count=1, min=1, median=1.0, mean=1.0, max=1),
        user_words=Spread(count=1, min=1, median=1.0, mean=1.0, max=1),
        assistant_words=Spread(count=1, min=1, median=1.0, mean=1.0, max=1),
        modalities={"image": ModalityCount(records=1, inputs=2)},
        inputs_per_record={2: 1},
        kinds={},
    )
    assert stats.text_only == 0
    assert format_statistics(stats).split("\n") == [
        "train.json: 2 records, 1 valid, 1 invalid: placeholder without media 1 (e.g. train.json[1]: "
        "2 '<image>' placeholders in user turns but 1 image path)",
        "conversations      1",
        "image              1 record, 2 inputs",
        "inputs per record  2: 1 record",
        "                   count  min  median  mean  max",
        "assistant turns        1    1       1   1.0    1",
        "user words             1    1       1   1.0    1",
        "assistant words        1    1       1   1.0    1",
    ]


def test_an_all_valid_file_says_so_first(tmp_path: Path) -> None:
    file = tmp_path / "chat.jsonl"
    file.write_text(json.dumps({"conversations": turns(("human", "Hello there"), ("gpt", "Hi"))}) + "\n")

    lines = format_statistics(data_statistics(file, PLACEHOLDERS)).split("\n")

    assert lines[:4] == [
        "chat.jsonl: 1 record, all valid",
        "conversations      1",
        "text only          1 record",
        "inputs per record  0: 1 record",
    ]


def test_media_paths_are_relative_to_the_media_root_when_given(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    write_media(tmp_path / "media")
    file = tmp_path / "train.jsonl"
    file.write_text(json.dumps(RECORDS[0]) + "\n")

    assert data_statistics(file, PLACEHOLDERS).report.counts() == {"missing file": 1}
    assert data_statistics(file, PLACEHOLDERS, media_root=tmp_path / "media").conversations == 1


def test_a_file_with_no_valid_record_gets_the_report_and_empty_statistics(tmp_path: Path) -> None:
    file = tmp_path / "train.jsonl"
    file.write_text(json.dumps(RECORDS[-1]) + "\n")

    stats = data_statistics(file, PLACEHOLDERS)

    assert (stats.conversations, stats.modalities, stats.inputs_per_record, stats.kinds) == (0, {}, {}, {})
    assert stats.turns == stats.user_words == Spread(count=0, min=0, median=0.0, mean=0.0, max=0)
    assert format_statistics(stats).split("\n") == [
        "train.jsonl: 1 record, 0 valid, 1 invalid: placeholder without media 1 (e.g. train.jsonl:1: "
        "1 '<image>' placeholder in user turns but no 'image' field)",
        "no valid record, so nothing to count",
    ]


def test_an_empty_spread_shows_dashes(tmp_path: Path) -> None:
    # System and assistant turns only: valid for the trainer, but no user message to count.
    file = tmp_path / "train.jsonl"
    file.write_text(json.dumps({"conversations": turns(("system", "Be kind."), ("gpt", "Hello."))}) + "\n")

    lines = format_statistics(data_statistics(file, PLACEHOLDERS)).split("\n")

    assert lines[-2:] == [
        "user words             0    -       -     -    -",
        "assistant words        1    1       1   1.0    1",
    ]


def test_spread_of_an_even_count_has_the_middle_mean_as_median() -> None:
    assert Spread.of([4, 1, 2, 9]) == Spread(count=4, min=1, median=3.0, mean=4.0, max=9)
    assert Spread.of([]) == Spread(count=0, min=0, median=0.0, mean=0.0, max=0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "data file {file} not found"),
        ("", "data file {file} is empty"),
        ("{not json\n", "data file {file} line 1 is not valid JSON"),
    ],
)
def test_an_unusable_file_raises_the_trainers_error_naming_it(
    tmp_path: Path, content: str | None, message: str
) -> None:
    file = tmp_path / "train.jsonl"
    if content is not None:
        file.write_text(content)

    with pytest.raises(InputError) as raised:
        data_statistics(file, PLACEHOLDERS)

    assert str(raised.value).startswith(message.format(file=file))
