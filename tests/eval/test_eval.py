"""``anymodal eval``: scoring rules, counting, the table, data checks, and a run with a real tiny model.

The end-to-end model is scripted to answer "It is red." to anything, so which items it gets right
follows from the data alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from anymodal.cli import main
from anymodal.contract.errors import UsageError
from anymodal.eval.data import load_eval_data
from anymodal.eval.scoring import exact_match, format_table, judge_reply, normalise_answer, summarise
from anymodal.runtime.model import AnyModalModel, PreparedInput
from anymodal.testing import save_scripted_llm, toy

REPLY = "It is red."
PLACEHOLDERS = {"toy": "<toy>", "toy_alt": "<toy_alt>"}
COLOUR = {"colour": {"expect": ["red"], "reject": ["green", "blue"]}}


# --- scoring ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "correct"),
    [
        ("The shape is red.", True),
        ("RED!", True),
        ("It is red, not green.", False),  # a reject word sinks it
        ("It is blue.", False),
        ("It is reddish.", False),  # words, not substrings
        ("", False),
    ],
)
def test_judge_needs_an_expected_word_and_no_rejected_one(reply: str, correct: bool) -> None:
    assert judge_reply(reply, COLOUR) is correct


def test_judge_matches_whole_words_only() -> None:
    position = {"position": {"expect": ["left"], "reject": ["right"]}}
    assert judge_reply("It is on the left, in bright light.", position)
    assert not judge_reply("It is on the right.", position)


def test_judge_needs_every_attribute() -> None:
    checks = {**COLOUR, "shape": {"expect": ["circle", "disc"], "reject": ["square"]}}
    assert judge_reply("A red disc.", checks)
    assert not judge_reply("A red square.", checks)
    assert not judge_reply("A green circle.", checks)
    assert not judge_reply("A circle.", checks)


def test_judge_edge_cases_are_decided() -> None:
    assert judge_reply("anything", {})  # no attribute to fail: vacuously right (the loader refuses it)
    assert not judge_reply("red", {"colour": {"reject": ["blue"]}})  # no expect word can occur
    assert judge_reply("red", {"colour": {"expect": ["Red"]}})  # check words are lowercased too


def test_exact_match_normalises_case_space_and_one_final_full_stop() -> None:
    assert normalise_answer("  It   is\nRED. ") == "it is red"
    assert exact_match("it is red", "It is red.")
    assert not exact_match("It is red..", "It is red.")  # only one full stop is dropped
    assert exact_match("It is red. ", "it is red")
    assert not exact_match("It is red, I think.", "It is red.")


# --- counting and the table ---------------------------------------------------------------------


def test_summary_counts_and_table_rows() -> None:
    outcomes = [
        ("image", "colour", True),
        ("image", "colour", True),
        ("image", "colour", False),
        ("audio", "pitch", True),
        ("image", "describe", False),
        ("audio", "pitch", False),
        ("image", "colour", True),
    ]
    summary = summarise(outcomes)
    assert (summary.overall.items, summary.overall.correct) == (7, 4)
    assert list(summary.by_modality) == ["image", "audio"]  # first appearance
    assert list(summary.by_kind["image"]) == ["colour", "describe"]  # sorted
    assert summary.by_kind["image"]["colour"].accuracy == 0.75
    assert format_table(summary).splitlines() == [
        "modality  kind      items  correct  accuracy",
        "image     colour        4        3     75.0%",
        "image     describe      1        0      0.0%",
        "image     (all)         5        3     60.0%",
        "audio     pitch         2        1     50.0%",
        "audio     (all)         2        1     50.0%",
        "overall                 7        4     57.1%",
    ]


# --- data ---------------------------------------------------------------------------------------


def npy(path: Path, value: float) -> str:
    np.save(path, np.full((4, 8), value, dtype=np.float32))
    return path.name


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": role, "value": text} for role, text in pairs]


def write_jsonl(file: Path, records: list[dict[str, Any]]) -> Path:
    file.write_text("".join(json.dumps(record) + "\n" for record in records))
    return file


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Six items in four valid records (picture, picture, toy, text) and one record with a missing file."""
    data = tmp_path / "data"
    data.mkdir()
    colour = {"kind": "colour", "checks": COLOUR}
    records: list[dict[str, Any]] = [
        {
            "id": "a",
            "toy": npy(data / "a.npy", 1.0),
            "conversations": turns(
                ("human", "<toy>\nWhat colour is it?"),
                ("gpt", "It is red."),
                ("human", "Where is it?"),
                ("gpt", "On the left."),
            ),
            "meta": {
                "modality": "picture",
                "turns": [colour, {"kind": "position", "checks": {"where": {"expect": ["left"]}}}],
            },
        },
        {
            "id": "b",
            "toy": npy(data / "b.npy", 2.0),
            "conversations": turns(("human", "Colour? <toy>"), ("gpt", "Green.")),
            "meta": {
                "modality": "picture",
                "turns": [{"kind": "colour", "checks": {"colour": {"expect": ["green"], "reject": ["red"]}}}],
            },
        },
        {
            "id": 7,
            "toy": npy(data / "c.npy", 3.0),
            "conversations": turns(
                ("human", "<toy>\nSay it."), ("gpt", "it is RED"), ("human", "Again?"), ("gpt", "It is blue.")
            ),
        },
        {"conversations": turns(("human", "What is it?"), ("gpt", "It  is red"))},
        {"id": "gone", "toy": "missing.npy", "conversations": turns(("human", "<toy>\nHi"), ("gpt", "x"))},
    ]
    write_jsonl(data / "conversations.jsonl", records)
    return data


def test_items_are_read_with_questions_kinds_and_modalities(dataset: Path) -> None:
    data = load_eval_data(dataset / "conversations.jsonl", PLACEHOLDERS)
    assert data.skipped == 1 and "missing file 1" in data.report.summary()
    assert [r.id for r in data.records] == ["a", "b", "7", "conversations.jsonl:4"]
    assert data.modalities() == ["picture", "toy", "text"]
    first = data.records[0]
    assert [(i.kind, i.question, i.reference) for i in first.items] == [
        ("colour", "What colour is it?", "It is red."),
        ("position", "Where is it?", "On the left."),
    ]
    assert data.records[1].items[0].question == "Colour?"
    assert [i.kind for i in data.records[2].items] == ["exact", "exact"]
    assert [m for m, _ in first.media] == ["toy"] and first.media[0][1] == dataset / "a.npy"
    assert [r.id for r in data.select(["picture", "text"], limit=2)] == ["a", "b"]
    with pytest.raises(UsageError, match=r"no record .* has modality 'pictures' \(did you mean 'picture'"):
        data.select(["pictures"])


def test_media_modalities_name_a_record_without_meta(tmp_path: Path) -> None:
    record = {
        "toy": npy(tmp_path / "a.npy", 1.0),
        "toy_alt": npy(tmp_path / "b.npy", 1.0),
        "conversations": turns(("human", "<toy_alt> <toy> Same?"), ("gpt", "Yes.")),
    }
    data = load_eval_data(write_jsonl(tmp_path / "d.jsonl", [record]), PLACEHOLDERS)
    assert data.modalities() == ["toy_alt+toy"]
    assert data.records[0].items[0].question == "Same?"


@pytest.mark.parametrize(
    ("meta", "detail"),
    [
        ({"turns": []}, "'meta.turns' has 0 entries for 1 assistant turns"),
        ({"turns": [{"checks": {}}]}, "'meta.turns[0].checks' is not a non-empty object"),
        (
            {"turns": [{"checks": {"c": {"expect": []}}}]},
            "'meta.turns[0].checks.c.expect' is not a non-empty",
        ),
        ({"turns": [{"checks": {"c": {"expect": ["dark red"]}}}]}, "not a single word of letters"),
        ({"modality": 3}, "'meta.modality' is not a non-empty string"),
        ("image", "'meta' is not an object"),
    ],
)
def test_bad_meta_skips_the_record(tmp_path: Path, meta: object, detail: str) -> None:
    good = {"conversations": turns(("human", "Hi"), ("gpt", "Hello."))}
    file = write_jsonl(tmp_path / "d.jsonl", [good, {**good, "meta": meta}])
    data = load_eval_data(file, PLACEHOLDERS)
    assert data.skipped == 1 and len(data.records) == 1
    assert detail in data.report.summary()
    with pytest.raises(UsageError, match="nothing to evaluate"):
        load_eval_data(write_jsonl(tmp_path / "bad.jsonl", [{**good, "meta": meta}]), PLACEHOLDERS)


# --- the command --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scripted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved anymodal model with the toy modality whose greedy reply is always REPLY."""
    directory = tmp_path_factory.mktemp("scripted")
    save_scripted_llm(directory / "llm", REPLY)
    (directory / "anymodal.yaml").write_text(
        "model:\n  llm: {path: ./llm}\n  template: plain\n  modalities:\n    toy: {}\n"
        "generation: {max_new_tokens: 12}\n"
    )
    return directory


@pytest.fixture(autouse=True)
def toy_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_plugins) -> None:
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path / "home"))
    use_plugins(toy)


def test_eval_scores_a_scripted_model(
    dataset: Path,
    scripted_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prepared: list[str] = []
    encoded: list[PreparedInput] = []
    prepare, encode = AnyModalModel.prepare, AnyModalModel.encode

    def counted_prepare(model: AnyModalModel, modality: str, path: str | Path) -> PreparedInput:
        prepared.append(Path(path).name)
        return prepare(model, modality, path)

    def counted_encode(model: AnyModalModel, inputs: Sequence[PreparedInput]) -> list[torch.Tensor]:
        encoded.extend(inputs)
        return encode(model, inputs)

    monkeypatch.setattr(AnyModalModel, "prepare", counted_prepare)
    monkeypatch.setattr(AnyModalModel, "encode", counted_encode)
    output = tmp_path / "out" / "eval.json"

    code = main(["eval", str(scripted_model), "--data", str(dataset), "--output", str(output)])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(output.read_text())
    # "It is red." is right for a's colour, c's first answer and the text record, wrong for the rest.
    assert result["items"] == 6 and result["skipped_records"] == 1
    assert result["overall"] == {"items": 6, "correct": 3, "accuracy": 0.5}
    assert result["by_modality"]["picture"] == {"items": 3, "correct": 1, "accuracy": 1 / 3}
    assert result["by_kind"]["toy"] == {"exact": {"items": 2, "correct": 1, "accuracy": 0.5}}
    assert list(result["by_kind"]["picture"]) == ["colour", "position"]
    assert [(i["id"], i["correct"]) for i in result["items_detail"]] == [
        ("a", True),
        ("a", False),
        ("b", False),
        ("7", True),
        ("7", False),
        ("conversations.jsonl:4", True),
    ]
    assert {i["reply"].strip() for i in result["items_detail"]} == {REPLY}
    assert result["items_detail"][1]["question"] == "Where is it?"
    # each file is read and encoded once, however many of its record's turns are asked
    assert prepared == ["a.npy", "b.npy", "c.npy"]
    assert len(encoded) == 3
    assert captured.out.splitlines() == [
        "modality  kind      items  correct  accuracy",
        "picture   colour        2        1     50.0%",
        "picture   position      1        0      0.0%",
        "picture   (all)         3        1     33.3%",
        "toy       exact         2        1     50.0%",
        "toy       (all)         2        1     50.0%",
        "text      exact         1        1    100.0%",
        "text      (all)         1        1    100.0%",
        "overall                 6        3     50.0%",
    ]
    assert "skipping 1 record: conversations.jsonl: 5 records" in captured.err
    assert "6/6 items (100%)" in captured.err and f"wrote {output}" in captured.err


def test_eval_filters_and_limits(
    dataset: Path, scripted_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = str(dataset / "conversations.jsonl")
    assert main(["eval", str(scripted_model), "--data", data, "--modality", "toy", "--modality", "text"]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())  # the default output, in the cwd
    assert list(result["by_modality"]) == ["toy", "text"] and result["items"] == 3
    assert main(["eval", str(scripted_model), "--data", data, "--limit", "1", "--max-new-tokens", "2"]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["items"] == 2 and result["overall"]["correct"] == 0  # two tokens are not a whole answer


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda d: d / "nowhere", 2, "error: data {d}/nowhere not found"),
        (lambda d: d, 2, "error: data directory {d} has no conversations.jsonl or conversations.json"),
        (lambda d: write_jsonl(d / "empty.jsonl", []), 1, "is empty"),
        (
            lambda d: write_jsonl(d / "x.jsonl", [{"image": "a.png", "conversations": []}]),
            2,
            "field 'image' is not an enabled modality",
        ),
    ],
)
def test_bad_data_is_one_error_line(
    tmp_path: Path,
    scripted_model: Path,
    capsys: pytest.CaptureFixture[str],
    make: Any,
    code: int,
    message: str,
) -> None:
    data = tmp_path / "d"
    data.mkdir()
    assert main(["eval", str(scripted_model), "--data", str(make(data))]) == code
    err = capsys.readouterr().err
    assert message.format(d=data) in err and len(err.strip().splitlines()) == 1, err


def test_a_model_that_does_not_load_is_one_error_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(tmp_path / "no-model.yaml"), "--data", str(dataset)]) == 2
    assert "error: config file not found" in capsys.readouterr().err
    config = tmp_path / "broken.yaml"
    config.write_text("model:\n  llm: {path: ./no-llm}\n  template: plain\n  modalities: {toy: {}}\n")
    assert main(["eval", str(config), "--data", str(dataset)]) == 1
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and f"the model is missing 1 file: {tmp_path / 'no-llm'}" in err


def test_items_decoded_together_get_the_replies_they_get_one_at_a_time(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A random tiny Llama (every prompt its own reply): ``generation.max_batch`` 4 against 1."""
    from anymodal_hf.bridge import HFBridge

    from anymodal.runtime.tiny_llm import save_tiny_llm

    model = tmp_path / "random"
    save_tiny_llm(model / "llm", seed=11)
    (model / "anymodal.yaml").write_text(
        "model:\n  llm: {path: ./llm}\n  template: plain\n  modalities:\n    toy: {}\n"
        "generation: {max_new_tokens: 10}\n"
    )
    batches: list[int] = []
    open_batch = HFBridge.open_batch

    def counted(bridge: HFBridge) -> Any:
        batches.append(1)
        return open_batch(bridge)

    monkeypatch.setattr(HFBridge, "open_batch", counted)
    details = {}
    for size in (4, 1):
        output = tmp_path / f"eval-{size}.json"
        command = ["eval", str(model), "--data", str(dataset), "--output", str(output)]
        assert main([*command, "--set", f"generation.max_batch={size}"]) == 0, capsys.readouterr().err
        details[size] = json.loads(output.read_text())["items_detail"]
    assert batches == [1]  # max_batch 4 decoded in one batch; max_batch 1 never opened one
    assert details[4] == details[1]
    assert len({item["reply"] for item in details[1]}) > 2
