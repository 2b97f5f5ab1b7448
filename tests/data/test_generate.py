"""``anymodal data generate`` end to end against real local endpoints: ``anymodal serve`` on small HF
text models built here (one writes nonsense, which the checks reject; one is scripted to answer,
and what it answers is trained on by ``anymodal train``), and a local server that fails on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner, Result

from anymodal.cli import cli
from anymodal.contract.registry import load_registry, set_registry
from anymodal.data.kinds import KindSpec, pick_instruction
from anymodal.testing import save_scripted_llm, save_tiny_llm, toy

#: What the scripted teacher answers to everything: its tokens distinct, as scripted_llama needs.
SCRIPTED = "The square looks bright red today."
COLOURS = ("red", "blue", "green", "amber", "violet", "teal")
INSTRUCTIONS = ["What colour is this?", "Name the colour you notice.", "Which shade does it show?"]


def write_annotations(folder: Path, count: int = len(COLOURS)) -> Path:
    """``count`` toy inputs (``.npy``) with captions and a free field, and a spec asking about them."""
    (folder / "media").mkdir(parents=True, exist_ok=True)
    lines = []
    for index, colour in enumerate(COLOURS[:count]):
        np.save(folder / "media" / f"x{index}.npy", np.full((4, 8), index + 1.0, dtype=np.float32))
        record = {
            "id": f"r{index}",
            "toy": f"media/x{index}.npy",
            "captions": [f"a {colour} square"],
            "colour": colour,
        }
        lines.append(json.dumps(record) + "\n")
    (folder / "annotations.jsonl").write_text("".join(lines))
    spec = folder / "spec.yaml"
    spec.write_text(
        "annotations: annotations.jsonl\n"
        "concurrency: 3\n"
        "teacher: {max_tokens: 24, temperature: 0.0, retries: 6, backoff_s: 0.05, max_backoff_s: 0.5,"
        " timeout_s: 60}\n"
        "define:\n"
        "  colour:\n"
        "    system: 'Say what colour the {modality} is, in one sentence.'\n"
        "    examples: [{context: 'captions:\\n- a grey circle', reply: 'The circle is grey.'}]\n"
        "    reply: answer\n"
        f"    instructions: {json.dumps(INSTRUCTIONS)}\n"
    )
    return spec


@pytest.fixture
def toy_cli() -> Iterator[Callable[..., Result]]:
    """``anymodal`` in this process, with the toy modality installed (``<toy>`` placeholders)."""
    set_registry(load_registry(plugins=[toy]))
    try:
        yield lambda *args: CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)
    finally:
        set_registry(None)


def served_model(url: str) -> str:
    (model,) = httpx.get(f"{url}/v1/models", timeout=10).json()["data"]
    return str(model["id"])


def text_model(folder: Path, llm: Path) -> Path:
    config = folder / "anymodal.yaml"
    config.write_text(f"model:\n  llm: {{path: {llm}}}\n  template: plain\n  modalities: {{}}\n")
    return config


@pytest.fixture(scope="module")
def nonsense_teacher(tmp_path_factory: pytest.TempPathFactory, serve_process: Any) -> Iterator[str]:
    """``anymodal serve`` on a tiny random Llama: its replies are nonsense and run to max_tokens."""
    folder = tmp_path_factory.mktemp("nonsense")
    config = text_model(folder, save_tiny_llm(folder / "llm", seed=3))
    with serve_process(["--model", str(config)]) as served:
        yield served.url


@pytest.fixture(scope="module")
def scripted_teacher(tmp_path_factory: pytest.TempPathFactory, serve_process: Any) -> Iterator[str]:
    """``anymodal serve`` on a Llama scripted to answer :data:`SCRIPTED`, one reply at a time and no
    queue: a request beyond the one running gets a 429, so the teacher's retries run for real."""
    folder = tmp_path_factory.mktemp("scripted")
    config = text_model(folder, save_scripted_llm(folder / "llm", SCRIPTED))
    args = ["--model", str(config), "--max-queue", "0", "--set", "generation.max_batch=1"]
    with serve_process(args) as served:
        yield served.url


def generate(toy_cli: Callable[..., Result], spec: Path, out: Path, url: str, *args: str) -> dict[str, Any]:
    result = toy_cli(
        "data",
        "generate",
        spec,
        "-o",
        out,
        "--teacher-url",
        f"{url}/v1",
        "--teacher-model",
        served_model(url),
        *args,
    )
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return summary


def lines(file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in file.read_text().splitlines()]


def test_nonsense_is_rejected_by_reason_and_a_rerun_resumes(
    tmp_path: Path, toy_cli: Callable[..., Result], nonsense_teacher: str
) -> None:
    spec = write_annotations(tmp_path)
    out = tmp_path / "data.jsonl"
    kinds = "kinds=[conversation,reasoning]"
    first = generate(toy_cli, spec, out, nonsense_teacher, "--limit", "2", "--set", kinds)
    assert (first["requests"], first["already_done"], first["written"], first["failed"]) == (4, 0, 0, 0)
    assert sum(first["rejected"].values()) == 4
    assert set(first["rejected"]) <= {"truncated", "unparseable"}  # a random model writes no Q/A blocks
    assert first["prompt_tokens"] > 0 and first["completion_tokens"] > 0
    rejected = lines(tmp_path / "data.rejected.jsonl")
    assert sorted(line["id"] for line in rejected) == [
        "r0/conversation",
        "r0/reasoning",
        "r1/conversation",
        "r1/reasoning",
    ]
    assert all(line["reason"] in first["rejected"] and line["detail"] and line["reply"] for line in rejected)
    assert out.read_text() == ""

    again = generate(toy_cli, spec, out, nonsense_teacher, "--set", kinds)
    assert (again["requests"], again["already_done"]) == (12, 4)
    assert sum(again["rejected"].values()) == 8 and again["written"] == 0
    assert len(lines(tmp_path / "data.rejected.jsonl")) == 12
    done = generate(toy_cli, spec, out, nonsense_teacher, "--set", kinds)
    assert (done["already_done"], done["rejected"], done["prompt_tokens"]) == (12, {}, 0)


def test_scripted_answers_become_training_data_that_trains(
    tmp_path: Path, toy_cli: Callable[..., Result], scripted_teacher: str
) -> None:
    spec = write_annotations(tmp_path)
    out = tmp_path / "data.jsonl"
    summary = generate(toy_cli, spec, out, scripted_teacher, "--set", "kinds=[colour]")
    # Every reply is the same sentence, so records asked with the same instruction are near
    # duplicates: one is kept per instruction picked.
    kind = KindSpec(system="", reply="answer", instructions=INSTRUCTIONS)
    picked = {pick_instruction(kind, f"r{i}", "colour", 0, ["toy"]) for i in range(len(COLOURS))}
    assert summary["written"] == len(picked) >= 2
    assert summary["rejected"] == {"near-duplicate": len(COLOURS) - len(picked)}
    assert summary["failed"] == 0
    assert summary["retries"] >= 1  # three at once to a server that runs one and queues none: 429s
    records = lines(out)
    for record in records:
        source = record["id"].removesuffix("/colour")
        index = int(source[1:])
        assert record["toy"] == f"media/x{index}.npy"
        assert record["meta"] == {
            "kind": "colour",
            "source": source,
            "teacher": served_model(scripted_teacher),
        }
        assert record["conversations"] == [
            {"from": "human", "value": "<toy>\n" + pick_instruction(kind, source, "colour", 0, ["toy"])},
            {"from": "gpt", "value": SCRIPTED},
        ]

    check = toy_cli("data", "check", out, "--json")
    assert check.exit_code == 0, check.output
    stats = json.loads(check.stdout)
    assert stats["conversations"] == len(picked)
    assert stats["modalities"] == {"toy": {"records": len(picked), "inputs": len(picked)}}
    assert stats["kinds"] == {"colour": len(picked)}

    train = tmp_path / "train.yaml"
    llm = save_tiny_llm(tmp_path / "student", seed=0)
    train.write_text(
        f"model:\n  llm: {{path: {llm}}}\n  template: plain\n  modalities: {{toy: {{}}}}\n"
        f"train:\n  stage: 2\n  data: {{train: {out}}}\n  output_dir: {tmp_path / 'run'}\n"
        "  batch_size: 2\n  max_steps: 2\n  save_every: 2\n"
    )
    trained = toy_cli("train", train)
    assert trained.exit_code == 0, trained.output
    metrics = lines(tmp_path / "run" / "metrics.jsonl")
    assert [row["step"] for row in metrics if "loss" in row] == [1, 2]


class FailingTeacher:
    """A local OpenAI-style teacher that fails on purpose: ``mode`` is ``ok``, ``flaky`` (the record
    whose caption says ``blue`` gets a 500 every time, the ``green`` one a reply that writes the
    input's placeholder) or ``locked`` (401 to everything)."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.mode = "ok"
        self.asked: list[str] = []
        self.url = stub.serve(self.answer)

    def answer(self, asked: Any) -> Any:
        context = asked.body["messages"][-1]["content"]
        self.asked.append(context)
        if self.mode == "locked":
            return self.stub.Answer(401, {"error": {"message": "invalid api key", "type": "auth"}})
        if self.mode == "flaky" and "blue" in context:
            return self.stub.Answer(500, {"error": {"message": "the GPU fell over"}})
        caption = context.splitlines()[1].removeprefix("- ")
        text = f"It shows {caption}, seen plainly."
        if self.mode == "flaky" and "green" in context:
            text = f"<toy> shows {caption}."
        return self.stub.Answer(body=self.stub.completion(text, prompt_tokens=100, completion_tokens=10))


@pytest.fixture
def failing_teacher(stub_teacher: Any) -> FailingTeacher:
    return FailingTeacher(stub_teacher)


def run_against(
    toy_cli: Callable[..., Result], spec: Path, out: Path, teacher: FailingTeacher, *args: str
) -> Result:
    return toy_cli(
        "data",
        "generate",
        spec,
        "-o",
        out,
        "--teacher-url",
        teacher.url,
        "--teacher-model",
        "gpt-test",
        "--set",
        "kinds=[colour]",
        "--set",
        "teacher.retries=2",
        *args,
    )


def test_a_failing_request_is_counted_and_asked_again_by_the_rerun(
    tmp_path: Path, toy_cli: Callable[..., Result], failing_teacher: FailingTeacher
) -> None:
    spec = write_annotations(tmp_path, count=4)
    out = tmp_path / "data.jsonl"
    failing_teacher.mode = "flaky"
    first = run_against(toy_cli, spec, out, failing_teacher, "--set", "teacher.price.prompt_per_million=2.5")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout.splitlines()[-1])
    assert (summary["written"], summary["failed"], summary["rejected"]) == (2, 1, {"placeholders": 1})
    assert sum("blue" in asked for asked in failing_teacher.asked) == 3  # tried, then 2 retries
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (300, 30)  # the 3 answered
    assert summary["cost"] == pytest.approx(300 * 2.5 / 1e6)
    assert (
        "4 requests: 2 written, 1 rejected (placeholders 1), 1 failed, 0 done before; 0 retried"
        in first.stderr
    )
    assert sorted(record["id"] for record in lines(out)) == ["r0/colour", "r3/colour"]
    (green,) = lines(tmp_path / "data.rejected.jsonl")
    assert green["id"] == "r2/colour" and green["reply"] == "<toy> shows a green square."
    assert (green["reason"], green["detail"]) == (
        "placeholders",
        "<toy> written 1 times in the answers for 0 input(s)",
    )

    failing_teacher.mode, failing_teacher.asked = "ok", []
    second = run_against(toy_cli, spec, out, failing_teacher)
    assert second.exit_code == 0, second.output
    assert len(failing_teacher.asked) == 1 and "blue" in failing_teacher.asked[0]
    (blue,) = [record for record in lines(out) if record["id"] == "r1/colour"]
    assert blue["conversations"][1]["value"] == "It shows a blue square, seen plainly."


def test_a_refusing_teacher_stops_the_run_at_once_with_one_error(
    tmp_path: Path, toy_cli: Callable[..., Result], failing_teacher: FailingTeacher
) -> None:
    spec = write_annotations(tmp_path)
    out = tmp_path / "data.jsonl"
    failing_teacher.mode = "locked"
    result = run_against(toy_cli, spec, out, failing_teacher, "--set", "concurrency=1")
    assert result.exit_code == 1
    refused = f"the teacher at {failing_teacher.url} (model 'gpt-test') refused us: HTTP 401: invalid api key"
    assert f"error: {refused} (hint: set $OPENAI_API_KEY" in result.stderr
    # One request at a time: the refused one, and perhaps the next, already sent; no retries, no more.
    assert len(failing_teacher.asked) <= 2 < len(COLOURS)
    assert out.read_text() == ""


def test_several_files_of_one_modality_stay_a_list_in_their_order(
    tmp_path: Path, toy_cli: Callable[..., Result], failing_teacher: FailingTeacher
) -> None:
    spec = write_annotations(tmp_path, count=2)
    annotations = tmp_path / "annotations.jsonl"
    records = lines(annotations)
    records[0]["toy"] = ["media/x1.npy", "media/x0.npy"]  # two inputs, the second file first
    annotations.write_text("".join(json.dumps(record) + "\n" for record in records))
    out = tmp_path / "out" / "data.jsonl"
    out.parent.mkdir()
    result = run_against(toy_cli, spec, out, failing_teacher)
    assert result.exit_code == 0, result.output
    by_id = {record["id"]: record for record in lines(out)}
    # Paths relative to the output's folder; one file is a path, several a list, as given.
    assert by_id["r0/colour"]["toy"] == ["../media/x1.npy", "../media/x0.npy"]
    assert by_id["r1/colour"]["toy"] == "../media/x1.npy"
    assert by_id["r0/colour"]["conversations"][0]["value"].startswith("<toy>\n<toy>\n")
