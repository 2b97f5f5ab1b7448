"""``anymodal eval --benchmark``: a benchmark plugin's questions asked, every reply kept as it comes,
a killed run resumed, the scores written; and POPE through the real image plugin and demo model."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import anymodal
from anymodal.cli import main
from anymodal.contract.registry import load_registry
from anymodal.eval.benchmarks.pope import reply_is_yes
from anymodal.runtime.model import AnyModalModel, PreparedInput
from anymodal.testing import save_scripted_llm, toy

REPLY = "It is red."


def read_colours(path: Path) -> list[anymodal.BenchmarkItem]:
    """A test benchmark's files: ``questions.jsonl`` of ``{"id", "file", "colour"}`` in a folder."""
    lines = (path / "questions.jsonl").read_text().splitlines()
    return [
        anymodal.BenchmarkItem(
            id=record["id"],
            question="What colour is it?",
            media=(("toy", path / record["file"]),),
            fields={"colour": record["colour"]},
        )
        for record in map(json.loads, lines)
    ]


def score_colours(items: Sequence[anymodal.BenchmarkItem], replies: Sequence[str]) -> dict[str, Any]:
    right = sum(str(item.fields["colour"]) in reply for item, reply in zip(items, replies, strict=True))
    return {"accuracy": right / len(items), "right": right}


COLOURS = anymodal.BenchmarkSpec(
    name="colours",
    read=read_colours,
    score=score_colours,
    description="a test benchmark",
    data="a folder with questions.jsonl",
    max_new_tokens=2,
)


class ColoursPlugin:
    """A third party's benchmark plugin, registered through the hook as an entry point's would be."""

    ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION
    __name__ = "tests.colours_benchmark"

    @anymodal.hookimpl
    def register_benchmarks(self, register: Callable[..., None]) -> None:
        register(COLOURS)


@pytest.fixture(scope="module")
def scripted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("scripted")
    save_scripted_llm(directory / "llm", REPLY)
    (directory / "anymodal.yaml").write_text(
        "model:\n  llm: {path: ./llm}\n  template: plain\n  modalities:\n    toy: {}\n"
        "generation: {max_new_tokens: 12}\n"
    )
    return directory


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_plugins: Any) -> Any:
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path / "home"))
    return use_plugins(toy, ColoursPlugin())


def write_questions(folder: Path, colours: Sequence[str], files: Sequence[str] | None = None) -> Path:
    """Questions q0, q1, ... of ``colours``; question i is about ``files[i]`` (default: its own file)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = files or [f"{index}.npy" for index in range(len(colours))]
    for name in set(names):
        np.save(folder / name, np.full((4, 8), float(len(name)), dtype=np.float32))
    lines = [
        json.dumps({"id": f"q{index}", "file": name, "colour": colour})
        for index, (name, colour) in enumerate(zip(names, colours, strict=True))
    ]
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def read_lines(file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def count_prepares(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    prepared: list[str] = []
    prepare = AnyModalModel.prepare

    def counted(model: AnyModalModel, modality: str, path: str | Path) -> PreparedInput:
        prepared.append(Path(path).name)
        return prepare(model, modality, path)

    monkeypatch.setattr(AnyModalModel, "prepare", counted)
    return prepared


def test_the_plugin_registers_its_benchmark(registry: Any) -> None:
    assert registry.benchmarks["colours"] is COLOURS
    assert "pope" in registry.benchmarks  # core's own, through the same hook
    assert registry.get("benchmark", "colours") is COLOURS
    with pytest.raises(anymodal.UsageError, match=r"unknown benchmark 'colour' \(did you mean 'colours'\?\)"):
        registry.get("benchmark", "colour")


def test_a_run_writes_predictions_and_the_official_scores(
    registry: Any,
    scripted_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_questions(tmp_path / "data", ["red", "blue", "red"], ["a.npy", "a.npy", "b.npy"])
    out = tmp_path / "out"
    prepared = count_prepares(monkeypatch)
    command = [
        "eval",
        str(scripted_model),
        "--benchmark",
        "colours",
        "--data",
        str(data),
        "--output",
        str(out),
    ]

    # the reply is as long as the full answer only when the benchmark's own 2 tokens are lifted
    assert main([*command, "--max-new-tokens", "12"]) == 0

    captured = capsys.readouterr()
    assert json.loads((out / "run.json").read_text()) == {
        "benchmark": "colours",
        "model": str(scripted_model),
        "data": str(data.resolve()),
    }
    predictions = read_lines(out / "predictions.jsonl")
    assert [(line["id"], line["reply"].strip()) for line in predictions] == [
        ("q0", REPLY),
        ("q1", REPLY),
        ("q2", REPLY),
    ]
    assert predictions[0] == {
        "id": "q0",
        "question": "What colour is it?",
        "media": [["toy", str(data / "a.npy")]],
        "reply": predictions[0]["reply"],
        "fields": {"colour": "red"},
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["questions"] == metrics["answered"] == 3 and metrics["failed"] == []
    assert metrics["scores"] == {"accuracy": 2 / 3, "right": 2}
    assert prepared == ["a.npy", "b.npy"]  # consecutive questions about one file read it once
    assert captured.out.splitlines() == [f"{'accuracy':<40} 0.6667", f"{'right':<40} 2"]
    assert "evaluating" in captured.err and "3/3 questions (100%)" in captured.err


def test_the_benchmark_sets_the_reply_length_unless_the_user_does(
    registry: Any, scripted_model: Path, tmp_path: Path
) -> None:
    data = write_questions(tmp_path / "data", ["red"])
    out = tmp_path / "out"
    assert (
        main(
            ["eval", str(scripted_model), "--benchmark", "colours", "--data", str(data), "--output", str(out)]
        )
        == 0
    )
    (line,) = read_lines(out / "predictions.jsonl")
    assert 0 < len(line["reply"]) < len(REPLY)  # two tokens of it
    assert json.loads((out / "metrics.json").read_text())["scores"]["right"] == 0


def test_a_killed_run_goes_on_where_it_stopped(
    registry: Any, scripted_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_questions(tmp_path / "data", ["red", "blue", "red", "green"])
    out = tmp_path / "out"
    command = [
        "eval",
        str(scripted_model),
        "--benchmark",
        "colours",
        "--data",
        str(data),
        "--output",
        str(out),
    ]
    assert main([*command, "--max-new-tokens", "12"]) == 0
    whole = (out / "predictions.jsonl").read_text().splitlines(keepends=True)
    # as a kill leaves it: two lines written, the third cut short, no metrics yet
    (out / "predictions.jsonl").write_text("".join(whole[:2]) + whole[2][:15])
    (out / "metrics.json").unlink()
    prepared = count_prepares(monkeypatch)

    assert main([*command, "--max-new-tokens", "12"]) == 0

    assert prepared == ["2.npy", "3.npy"]
    assert (out / "predictions.jsonl").read_text().splitlines(keepends=True) == whole
    assert json.loads((out / "metrics.json").read_text())["scores"] == {"accuracy": 0.5, "right": 2}
    # a third run has nothing to ask, and scores again
    prepared.clear()
    assert main([*command, "--max-new-tokens", "12"]) == 0
    assert prepared == []


def test_questions_whose_files_fail_are_listed_and_asked_again_by_a_rerun(
    registry: Any, scripted_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_questions(tmp_path / "data", ["red", "red"])
    (data / "1.npy").write_bytes(b"not an array")
    out = tmp_path / "out"
    command = [
        "eval",
        str(scripted_model),
        "--benchmark",
        "colours",
        "--data",
        str(data),
        "--output",
        str(out),
    ]
    assert main([*command, "--max-new-tokens", "12"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["answered"] == 1 and [failure["id"] for failure in metrics["failed"]] == ["q1"]
    assert "1.npy" in metrics["failed"][0]["error"]
    assert "skipped q1: " in capsys.readouterr().err
    assert [line["id"] for line in read_lines(out / "predictions.jsonl")] == ["q0"]

    np.save(data / "1.npy", np.zeros((4, 8), dtype=np.float32))
    assert main([*command, "--max-new-tokens", "12"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["answered"] == 2 and metrics["failed"] == []


def test_another_runs_folder_is_refused_unless_fresh(
    registry: Any, scripted_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_questions(tmp_path / "data", ["red"])
    other = write_questions(tmp_path / "other", ["blue", "red"])
    out = tmp_path / "out"
    command = ["eval", str(scripted_model), "--benchmark", "colours", "--output", str(out)]
    assert main([*command, "--data", str(data)]) == 0
    capsys.readouterr()

    assert main([*command, "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"error: {out} holds predictions of another run: data {str(data.resolve())!r}" in err
    assert "--fresh to start this one over" in err

    assert main([*command, "--data", str(other), "--fresh"]) == 0
    assert [line["id"] for line in read_lines(out / "predictions.jsonl")] == ["q0", "q1"]
    assert json.loads((out / "run.json").read_text())["data"] == str(other.resolve())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--benchmark", "colour"], "error: unknown benchmark 'colour' (did you mean 'colours'?)"),
        (["--benchmark", "colours", "--modality", "toy"], "error: --modality is for conversations"),
        (["--fresh"], "error: --fresh is for --benchmark runs"),
    ],
)
def test_bad_options_are_one_error_line(
    registry: Any,
    scripted_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    data = write_questions(tmp_path / "data", ["red"])
    assert main(["eval", str(scripted_model), "--data", str(data), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err


def test_data_the_benchmark_cannot_use_is_refused_before_the_model_loads(
    registry: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"  # a model that would fail to load: never reached
    broken.write_text("model:\n  llm: {path: ./no-llm}\n  template: plain\n  modalities: {toy: {}}\n")
    command = ["eval", str(broken), "--benchmark", "colours", "--output", str(tmp_path / "out"), "--data"]
    assert main([*command, str(tmp_path / "nowhere")]) == 2
    assert (
        f"error: {tmp_path / 'nowhere'}: no such file or folder for benchmark colours"
        in capsys.readouterr().err
    )

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "questions.jsonl").write_text("")
    assert main([*command, str(tmp_path / "empty")]) == 2
    assert (
        "holds no colours questions (hint: --data is a folder with questions.jsonl)"
        in capsys.readouterr().err
    )

    twice = write_questions(tmp_path / "twice", ["red", "red"])
    (twice / "questions.jsonl").write_text((twice / "questions.jsonl").read_text().replace("q1", "q0"))
    assert main([*command, str(twice)]) == 2
    assert "read question id 'q0' twice" in capsys.readouterr().err

    pictures = tmp_path / "pope"  # POPE asks about images, which this model has no modality for
    pictures.mkdir()
    (pictures / "coco_pope_random.json").write_text(
        json.dumps(
            {"question_id": 1, "image": "x.jpg", "text": "Is there a dog in the image?", "label": "no"}
        )
    )
    pope = ["eval", str(broken), "--benchmark", "pope", "--output", str(tmp_path / "out"), "--data"]
    assert main([*pope, str(pictures)]) == 2
    assert "benchmark pope asks about image input(s), which model" in capsys.readouterr().err


# --- POPE, through the image plugin and the demo model --------------------------------------------


def test_pope_runs_on_the_demo_model_as_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path / "home"))
    data = tmp_path / "pope"
    (data / "coco").mkdir(parents=True)
    (data / "val2014").mkdir()
    for number, colour in enumerate(("red", "blue")):
        Image.new("RGB", (64, 48), colour).save(data / "val2014" / f"COCO_val2014_{number:012d}.jpg")
    labels = {"random": ["yes", "no", "no", "yes"], "adversarial": ["no", "no", "yes", "no"]}
    for split, split_labels in labels.items():
        lines = [
            json.dumps(
                {
                    "question_id": number + 1,
                    "image": f"COCO_val2014_{number // 2:012d}.jpg",
                    "text": "Is there a dog in the image?",
                    "label": label,
                }
            )
            for number, label in enumerate(split_labels)
        ]
        (data / "coco" / f"coco_pope_{split}.json").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"

    assert main(["eval", "--benchmark", "pope", "--data", str(data), "--output", str(out)]) == 0

    predictions = read_lines(out / "predictions.jsonl")
    assert [line["id"] for line in predictions] == [f"{s}/{n}" for s in labels for n in (1, 2, 3, 4)]
    assert predictions[0]["question"] == (
        "Is there a dog in the image?\nAnswer the question using a single word or phrase."
    )
    assert predictions[0]["media"] == [["image", str(data / "val2014" / "COCO_val2014_000000000000.jpg")]]
    scores = json.loads((out / "metrics.json").read_text())["scores"]
    assert list(scores["splits"]) == ["random", "adversarial"]
    for split, split_labels in labels.items():
        said = [reply_is_yes(line["reply"]) for line in predictions if line["fields"]["split"] == split]
        right = sum(yes == (label == "yes") for yes, label in zip(said, split_labels, strict=True))
        assert scores["splits"][split]["accuracy"] == right / 4
        assert scores["splits"][split]["yes_ratio"] == sum(said) / 4
    mean = (scores["splits"]["random"]["f1"] + scores["splits"]["adversarial"]["f1"]) / 2
    assert scores["mean"]["f1"] == pytest.approx(mean)
    assert "splits.random.accuracy" in capsys.readouterr().out


def test_the_plugin_example_in_docs_evaluation_works_as_written(tmp_path: Path) -> None:
    """docs/evaluation.md's benchmark plugin, run as it is written there: registered, read, scored."""
    import types

    text = (Path(__file__).resolve().parents[2] / "docs" / "evaluation.md").read_text(encoding="utf-8")
    code = text.split("## Writing a benchmark plugin", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("my_benchmark_plugin")
    exec(compile(code, "docs/evaluation.md", "exec"), module.__dict__)
    (tmp_path / "questions.tsv").write_text("a.png\tWhat colour is it?\tred\nb.png\tAnd this one?\tblue\n")
    spec = load_registry(plugins=[module]).benchmarks["my-benchmark"]
    items = spec.read(tmp_path)
    assert [(item.id, item.question, item.media, item.fields) for item in items] == [
        ("1", "What colour is it?", (("image", tmp_path / "a.png"),), {"answer": "red"}),
        ("2", "And this one?", (("image", tmp_path / "b.png"),), {"answer": "blue"}),
    ]
    assert spec.score(items, [" Red", "green"]) == {"accuracy": 0.5, "count": 2}
