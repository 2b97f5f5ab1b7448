"""``anymodal batch``: files of OpenAI batch requests answered in-process, as the server answers them.

The model is a scripted LLM with a known reply and the toy modalities, as in test_serve.py. The
command runs through click (CliRunner), and in its own process where it must: killed part-way and
resumed, and on the built-in demo model with FastAPI made unimportable.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from anymodal.cli import cli
from anymodal.cli.batch import ProgressBar
from anymodal.config import load_config
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import load_registry
from anymodal.runtime.chat import ChatSession
from anymodal.runtime.embedding import embed_files
from anymodal.serve import batch
from anymodal.serve.app import create_app
from anymodal.serve.service import ServeOptions, Service
from anymodal.testing import toy

ROOT = Path(__file__).resolve().parents[2]
REPLY = "It hums softly."
MODEL = "toy-model"
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
RECORD_ID = re.compile(r"^batch_req_[0-9a-f]{32}$")
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def registry():
    return load_registry(plugins=[toy])


@pytest.fixture(scope="module")
def config_file(write_toy_model) -> Path:
    return write_toy_model(REPLY)


@pytest.fixture(scope="module")
def session(config_file, registry) -> ChatSession:
    return ChatSession.from_config(load_config(config_file, registry=registry).config, registry)


@pytest.fixture
def service(session, registry, tmp_path):
    """The served model, letting requests read files under ``tmp_path``."""
    served = Service(session, registry, ServeOptions(model_id=MODEL, allow_paths=(tmp_path,)))
    yield served
    served.thread.shutdown()


@pytest.fixture
def toy_cli(use_plugins):
    use_plugins(toy)


def npy(path: Path, value: float, rows: int = 4) -> Path:
    np.save(path, np.full((rows, 8), value, dtype=np.float32))
    return path


def toy_part(path: Path | str) -> dict:
    return {"type": "toy_url", "toy_url": {"url": str(path)}}


def ask(*parts: Any) -> dict:
    content = [p if isinstance(p, dict) else {"type": "text", "text": p} for p in parts]
    return {"messages": [{"role": "user", "content": content}]}


def line(custom_id: str, body: Any, url: str = CHAT, method: str = "POST") -> dict:
    return {"custom_id": custom_id, "method": method, "url": url, "body": body}


def write_batch(path: Path, *items: dict | str | bytes) -> Path:
    """A batch file of ``items``: request objects, or raw lines as given."""
    raw = [
        item if isinstance(item, bytes) else (item if isinstance(item, str) else json.dumps(item)).encode()
        for item in items
    ]
    path.write_bytes(b"".join(r + b"\n" for r in raw))
    return path


def records(path: Path) -> list[dict]:
    return list(batch.records(path))


def comparable(record: dict) -> dict:
    """An output line without what differs from run to run: its ids and timestamps."""
    record = json.loads(json.dumps(record))
    del record["id"]
    response = record["response"]
    if response is not None:
        assert REQUEST_ID.match(response.pop("request_id"))
        response["body"].pop("id", None)
        response["body"].pop("created", None)
    return record


def run_cli(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


# -- answers -------------------------------------------------------------------------------------------


def test_chat_and_embedding_lines_in_openai_batch_format(toy_cli, config_file, session, registry, tmp_path):
    work, other, elsewhere = (tmp_path / name for name in ("work", "other", "elsewhere"))
    for folder in (work, other, elsewhere):
        folder.mkdir()
    reading = npy(work / "reading.npy", 0.5)
    source = write_batch(
        work / "in.jsonl",
        line("plain", {"messages": [{"role": "user", "content": "hello there"}]}),
        line("with-toy", ask(toy_part(reading), "what is it?")),
        line("embedding", {"input": [toy_part(reading)]}, EMBEDDINGS),
        line("allowed", ask(toy_part(npy(other / "a.npy", 1.0)), "and this?")),
        line("refused", ask(toy_part(npy(elsewhere / "b.npy", 2.0)), "and that?")),
    )
    out = tmp_path / "out.jsonl"
    result = run_cli("batch", source, "-o", out, "--model", config_file, "--allow-path", other, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary.pop("seconds") >= 0
    assert summary == {
        "input": str(source),
        "output": str(out),
        "model": str(config_file),
        "total": 5,
        "done": 5,
        "succeeded": 4,
        "failed": 1,
        "skipped_already_done": 0,
    }
    assert "anymodal batch:" not in result.stderr  # --json: no human summary
    lines = records(out)
    assert [r["custom_id"] for r in lines] == ["plain", "with-toy", "embedding", "allowed", "refused"]
    for record in lines:
        assert list(record) == ["id", "custom_id", "response", "error"] and record["error"] is None
        assert RECORD_ID.match(record["id"])
        assert list(record["response"]) == ["status_code", "request_id", "body"]
        assert REQUEST_ID.match(record["response"]["request_id"])
    assert len({r["id"] for r in lines}) == len({r["response"]["request_id"] for r in lines}) == 5
    plain, with_toy, embedding, allowed, refused = (r["response"] for r in lines)
    for answered in (plain, with_toy, allowed):
        body = answered["body"]
        assert answered["status_code"] == 200 and body["object"] == "chat.completion"
        assert body["model"] == str(config_file) and body["id"].startswith("chatcmpl-")
        assert body["choices"] == [
            {
                "index": 0,
                "message": {"role": "assistant", "content": REPLY, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ]
    assert with_toy["body"]["usage"]["prompt_tokens"] > plain["body"]["usage"]["prompt_tokens"]
    assert plain["body"]["usage"]["completion_tokens"] == len(session.model.bridge.tokenize(REPLY))
    config = load_config(config_file, registry=registry).config
    [expected] = embed_files([("toy", reading)], config, registry)
    assert embedding["status_code"] == 200
    assert embedding["body"]["object"] == "list" and embedding["body"]["model"] == str(config_file)
    [item] = embedding["body"]["data"]
    assert (item["object"], item["index"]) == ("embedding", 0)
    np.testing.assert_allclose(item["embedding"], expected.vector.numpy(), atol=1e-5)
    assert refused["status_code"] == 400
    assert refused["body"]["error"]["code"] == "path_not_allowed"
    assert refused["body"]["error"]["param"] == "messages[0].content[0]"


def test_without_json_the_summary_is_one_line_on_stderr(toy_cli, config_file, tmp_path):
    source = write_batch(tmp_path / "in.jsonl", line("a", ask("hi")), line("b", ask("hi"), method="GET"))
    source.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())  # a byte order mark, as some editors write
    out = tmp_path / "out.jsonl"
    result = run_cli("batch", source, "-o", out, "--model", config_file)
    assert result.exit_code == 0 and result.stdout == ""
    assert [r["response"] and r["response"]["status_code"] for r in records(out)] == [200, None]
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"anymodal batch: 2 of 2 lines answered in \d+\.\d s \(1 succeeded, 1 failed\); results in {out}",
        last,
    ), last


# -- refusals, exactly as the server's -------------------------------------------------------------


def _refused_requests(folder: Path) -> list[tuple[str, str, dict, int, str | None, str, str]]:
    """(custom_id, url, body, status, param, code, part of the message) of requests the server refuses."""
    corrupt = folder / "corrupt.npy"
    corrupt.write_bytes(b"\x93NUMPY this is no array")
    outside = npy(folder.parent / f"{folder.name}-outside.npy", 3.0)
    return [
        ("stream", CHAT, {**ask("hi"), "stream": True}, 400, "stream", "invalid_request", "stream is not"),
        ("model", CHAT, {**ask("hi"), "model": "gpt-4o"}, 404, "model", "model_not_found", "'gpt-4o'"),
        ("logprobs", CHAT, {**ask("hi"), "logprobs": True}, 400, "logprobs", "unsupported_parameter", ""),
        ("hot", CHAT, {**ask("hi"), "temperature": 5}, 400, "temperature", "invalid_request", "at most 2"),
        (
            "banana",
            CHAT,
            ask({"type": "banana_url", "banana_url": {"url": "data:,x"}}),
            400,
            "messages[0].content[0].type",
            "invalid_part",
            "unknown content part type 'banana_url'",
        ),
        (
            "corrupt",
            CHAT,
            ask(toy_part(corrupt)),
            400,
            "messages[0].content[0]",
            "invalid_input",
            "corrupt.npy",
        ),
        (
            "outside",
            CHAT,
            ask(toy_part(outside)),
            400,
            "messages[0].content[0]",
            "path_not_allowed",
            "is not under a folder",
        ),
        (
            "remote",
            CHAT,
            ask(toy_part("http://127.0.0.1:9/a.npy")),
            400,
            "messages[0].content[0]",
            "remote_url_refused",
            "--allow-remote",
        ),
        ("no-body", CHAT, None, 400, None, "invalid_request", "the request body must be a JSON object"),
        ("list-body", CHAT, [1], 400, None, "invalid_request", "the request body must be a JSON object"),
        (
            "text-embedding",
            EMBEDDINGS,
            {"input": "a sentence"},
            400,
            "input",
            "text_embeddings_unavailable",
            "no text modality",
        ),
    ]


def test_refused_requests_get_the_servers_status_and_error(service, session, registry, tmp_path, live_server):
    refused = _refused_requests(tmp_path)
    requests = [line(custom_id, body, url) for custom_id, url, body, *_ in refused]
    source = write_batch(tmp_path / "in.jsonl", *requests, line("fine", ask("still there?")))
    summary = batch.run(batch.plan(source, tmp_path / "out.jsonl"), service)
    assert (summary.total, summary.done, summary.succeeded, summary.failed) == (12, 12, 1, 11)
    *errors, fine = records(tmp_path / "out.jsonl")
    assert fine["response"]["body"]["choices"][0]["message"]["content"] == REPLY
    assert service.worker.admitted == 0  # every refusal gave its ticket back
    options = ServeOptions(model_id=MODEL, allow_paths=(tmp_path,))
    with live_server(create_app(session, registry, options)) as url:
        for record, case in zip(errors, refused, strict=True):
            custom_id, path, body, status, param, code, message = case
            assert record["custom_id"] == custom_id and record["error"] is None
            response = record["response"]
            assert response["status_code"] == status, record
            error = response["body"]["error"]
            assert list(response["body"]) == ["error"]
            assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
            assert message in error["message"]
            if custom_id != "stream":  # the server streams it; a batch cannot
                served = httpx.post(f"{url}{path}", content=json.dumps(body), timeout=30)
                assert (served.status_code, served.json()) == (status, response["body"])


def test_a_failing_model_is_a_500_line_and_the_run_goes_on(service, session, tmp_path, replace_generation):
    def fail(config):
        yield "so "
        raise RuntimeError("the accelerator fell over")

    source = write_batch(tmp_path / "in.jsonl", line("a", ask("hi")), line("b", {"input": [toy_part("x")]}))
    replace_generation(session, fail)
    plan = batch.plan(source, tmp_path / "out.jsonl")
    summary = batch.run(plan, service)
    failed, other = records(tmp_path / "out.jsonl")
    assert failed["response"]["status_code"] == 500
    assert failed["response"]["body"] == {
        "error": {
            "message": "internal error: RuntimeError: the accelerator fell over",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    assert other["response"]["status_code"] == 400  # the next line still ran (and x is no file)
    assert (summary.succeeded, summary.failed) == (0, 2) and service.worker.admitted == 0


def test_a_line_over_the_size_limit_is_a_413(session, registry, tmp_path):
    small = Service(session, registry, ServeOptions(model_id=MODEL, max_request_mb=0.001))
    source = write_batch(tmp_path / "in.jsonl", line("big", ask("x" * 2000)), line("small", ask("hi")))
    try:
        batch.run(batch.plan(source, tmp_path / "out.jsonl"), small)
    finally:
        small.thread.shutdown()
    big, fine = (r["response"] for r in records(tmp_path / "out.jsonl"))
    assert big["status_code"] == 413 and big["body"]["error"]["code"] == "request_too_large"
    assert "limit of 0.001 MB (--max-request-mb)" in big["body"]["error"]["message"]
    assert fine["status_code"] == 200


# -- lines that are no requests ----------------------------------------------------------------------


def test_lines_that_are_no_requests_get_error_lines_and_the_run_goes_on(service, tmp_path):
    source = write_batch(
        tmp_path / "in.jsonl",
        "not json",  # 1
        "[1, 2]",  # 2
        json.dumps({"method": "POST", "url": CHAT, "body": ask("hi")}),  # 3
        line("a", ask("hi")),  # 4
        line("a", ask("again")),  # 5
        "   ",  # 6: blank, skipped
        line("b", ask("hi"), method="GET"),  # 7
        line("c", ask("hi"), url="/v1/completions"),  # 8
        json.dumps({"custom_id": 5, "method": "POST", "url": CHAT, "body": ask("hi")}),  # 9
        b'{"custom_id": "\xff"}',  # 10
        line("line-1", ask("hi")),  # 11: the id line 1 would get
    )
    summary = batch.run(batch.plan(source, tmp_path / "out.jsonl"), service)
    assert (summary.total, summary.succeeded, summary.failed) == (10, 2, 8)
    got = records(tmp_path / "out.jsonl")
    assert all(RECORD_ID.match(r.pop("id")) for r in got)
    answered = [r.pop("response") for r in got if r["response"] is not None]
    assert [a["status_code"] for a in answered] == [200, 200]

    def bad(custom_id: str, number: int, code: str, message: str, param: str | None = None) -> dict:
        error = {"code": code, "message": message, "param": param, "line": number}
        return {"custom_id": custom_id, "response": None, "error": error}

    shape = '{"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {...}}'
    no_id = "has no custom_id: each request needs a non-empty string custom_id"
    assert got == [
        bad("line-1-2", 1, "invalid_json", "line 1 is not valid JSON (Expecting value at column 1)"),
        bad("line-2", 2, "invalid_line", f"line 2 is not a request: expected {shape}"),
        bad("line-3", 3, "missing_custom_id", f"line 3 {no_id}", "custom_id"),
        {"custom_id": "a", "error": None},
        bad(
            "line-5",
            5,
            "duplicate_custom_id",
            "line 5 reuses the custom_id 'a' of line 4: each request needs a custom_id of its own",
            "custom_id",
        ),
        bad("b", 7, "invalid_method", "line 7: method must be 'POST', not 'GET'", "method"),
        bad(
            "c",
            8,
            "invalid_url",
            "line 8: url must be '/v1/chat/completions' or '/v1/embeddings', not '/v1/completions'",
            "url",
        ),
        bad("line-9", 9, "missing_custom_id", f"line 9 {no_id}", "custom_id"),
        bad("line-10", 10, "invalid_json", "line 10 is not UTF-8 text"),
        {"custom_id": "line-1", "error": None},
    ]
    again = batch.run(batch.plan(source, tmp_path / "out.jsonl"), service)  # every line is done
    assert (again.done, again.skipped_already_done) == (0, 10)


# -- resuming ------------------------------------------------------------------------------------------


def test_a_rerun_cuts_a_half_written_line_and_answers_only_the_rest(
    toy_cli, config_file, tmp_path, monkeypatch
):
    files = [npy(tmp_path / f"{i}.npy", float(i)) for i in range(4)]
    source = write_batch(
        tmp_path / "in.jsonl",
        *(line(f"r{i}", ask(toy_part(f), f"number {i}?")) for i, f in enumerate(files)),
        line("vectors", {"input": [toy_part(f) for f in files]}, EMBEDDINGS),
    )
    whole = tmp_path / "whole.jsonl"
    assert run_cli("batch", source, "-o", whole, "--model", config_file).exit_code == 0
    kept = whole.read_bytes().splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"".join(kept[:2]) + kept[2][:40])  # killed while writing the third line
    result = run_cli("batch", source, "-o", out, "--model", config_file, "--json")
    assert result.exit_code == 0, result.output
    assert f"note: cut a half-written last line (40 bytes) off {out}; its request runs again" in result.stderr
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["done"], summary["skipped_already_done"]) == (5, 3, 2)
    resumed = out.read_bytes().splitlines(keepends=True)
    assert resumed[:2] == kept[:2]  # what was there stays, byte for byte
    assert [comparable(r) for r in records(out)] == [comparable(r) for r in records(whole)]
    # a whole last line that is not JSON is cut too; a finished batch loads no model at all
    before = out.read_bytes()
    with out.open("ab") as file:
        file.write(b"garbage\n")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for a finished batch")

    monkeypatch.setattr(ChatSession, "from_config", no_model)
    done = run_cli("batch", source, "-o", out, "--model", config_file, "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert (summary["done"], summary["skipped_already_done"], summary["model"]) == (0, 5, None)
    assert out.read_bytes() == before


def test_output_of_another_batch_is_refused(toy_cli, config_file, tmp_path):
    source = write_batch(tmp_path / "in.jsonl", line("a", ask("hi")), line("b", ask("hi")))
    out = tmp_path / "out.jsonl"
    cases = [
        (
            [{"custom_id": "a"}, {"custom_id": "zzz"}],
            f"error: {out} holds 1 result(s) for custom_ids that {source} does not have ('zzz'): it is "
            "another batch's output, or the input changed (hint: give a new -o file, or delete those "
            "lines to resume)",
        ),
        (
            ["not a line", {"custom_id": "a"}],
            f"error: line 1 of {out} is not a batch output line, and more follow it (hint: is -o the "
            "right file? give a new one to start over)",
        ),
        (
            [{"custom_id": "a"}, {"custom_id": "a"}],
            f"error: {out} answers custom_id 'a' twice (lines 1 and 2): it was not written by one "
            "anymodal batch (hint: is -o the right file? give a new one to start over)",
        ),
    ]
    for lines, message in cases:
        write_batch(out, *lines)
        before = out.read_bytes()
        result = run_cli("batch", source, "-o", out, "--model", config_file)
        assert result.exit_code == 2 and result.stderr.splitlines() == [message]
        assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("missing.jsonl", "error: batch input not found: {dir}/missing.jsonl (hint: give a .jsonl file"),
        ("folder", "error: batch input is a folder, not a file: {dir}/folder"),
        ("blank.jsonl", "error: the batch input {dir}/blank.jsonl holds no requests (hint: one a line:"),
        ("same", "error: the output {dir}/in.jsonl is the input file (hint: write the results to another"),
        ("no-folder", "error: cannot write {dir}/nowhere/out.jsonl: the folder {dir}/nowhere does not exist"),
        ("out-folder", "error: the output {dir}/folder is a folder (hint: give -o a file name"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(toy_cli, config_file, tmp_path, given, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "blank.jsonl").write_text("\n  \n\n")
    write_batch(tmp_path / "in.jsonl", line("a", ask("hi")))
    source, out = {
        "same": ("in.jsonl", "in.jsonl"),
        "no-folder": ("in.jsonl", "nowhere/out.jsonl"),
        "out-folder": ("in.jsonl", "folder"),
    }.get(given, (given, "out.jsonl"))
    result = run_cli("batch", tmp_path / source, "-o", tmp_path / out, "--model", config_file)
    assert result.exit_code == 2
    [shown] = result.stderr.splitlines()
    assert shown.startswith(message.format(dir=tmp_path)), shown
    assert not (tmp_path / "out.jsonl").exists()


def test_plan_refuses_what_cannot_run_before_any_model(tmp_path):
    write_batch(tmp_path / "in.jsonl", line("a", ask("hi")))
    with pytest.raises(UsageError, match="is the input file"):
        batch.plan(tmp_path / "in.jsonl", tmp_path / "." / "in.jsonl")
    with pytest.raises(ValueError, match="a Service is needed"):
        batch.run(batch.plan(tmp_path / "in.jsonl", tmp_path / "out.jsonl"), None)


def test_ctrl_c_keeps_the_lines_written_and_a_rerun_finishes(toy_cli, config_file, tmp_path, monkeypatch):
    source = write_batch(tmp_path / "in.jsonl", *(line(f"r{i}", ask(f"hi {i}")) for i in range(3)))
    out = tmp_path / "out.jsonl"
    begin = Service.begin_chat
    calls = []

    def interrupted(self, request, ticket):
        calls.append(request)
        if len(calls) == 2:
            ticket.release()
            raise KeyboardInterrupt
        return begin(self, request, ticket)

    monkeypatch.setattr(Service, "begin_chat", interrupted)
    stopped = run_cli("batch", source, "-o", out, "--model", config_file)
    assert stopped.exit_code == 130  # the shell's code for Ctrl-C
    shown = [text for text in stopped.stderr.splitlines() if text]
    assert shown[-2:] == [
        f"anymodal batch: stopped; the lines written so far stay in {out}, and the same command goes "
        "on from there",
        "interrupted",
    ]
    assert [r["custom_id"] for r in records(out)] == ["r0"]
    monkeypatch.undo()
    finished = run_cli("batch", source, "-o", out, "--model", config_file, "--json")
    assert finished.exit_code == 0, finished.output
    assert json.loads(finished.stdout)["done"] == 2
    assert [r["custom_id"] for r in records(out)] == ["r0", "r1", "r2"]


# A plugin of the toy modalities whose loader sleeps, so that a run is slow enough to be killed.
SLOW_TOY = """
import dataclasses, os, time

import anymodal
from anymodal.testing import toy

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION
register_encoders = toy.register_encoders


def slow_load(path):
    time.sleep(float(os.environ.get("ANYMODAL_TEST_LOAD_S", "0")))
    return toy.load_npy(path)


@anymodal.hookimpl
def register_modalities(register):
    toy.register_modalities(lambda spec: register(dataclasses.replace(spec, loader=slow_load)))
"""


def test_killed_part_way_a_rerun_gives_every_line_once_as_an_unbroken_run(
    toy_cli, config_file, install_plugin, tmp_path
):
    site = install_plugin("anymodal-slow-toy", "anymodal_slow_toy", SLOW_TOY)
    requests = [line(f"r{i}", ask(toy_part(npy(tmp_path / f"{i}.npy", i)), f"{i}?")) for i in range(12)]
    source = write_batch(
        tmp_path / "in.jsonl",
        *requests[:5],
        "this line is no request",
        line("vector", {"input": [toy_part(tmp_path / "1.npy")]}, EMBEDDINGS),
        line("streamed", {**ask("hi"), "stream": True}),
        *requests[5:],
    )
    out = tmp_path / "out.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "ANYMODAL_TEST_LOAD_S": "0.25",
    }
    command = [sys.executable, "-m", "anymodal", "batch", str(source), "-o", str(out)]
    process = subprocess.Popen(  # four requests at a time, so that lines come out as the run goes
        [*command, "--model", str(config_file), "--set", "generation.max_batch=4"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while not (out.exists() and out.read_bytes().count(b"\n") >= 3):
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "no output lines appeared"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    written = len(records(out))
    assert 3 <= written < 15, "the run was not killed part-way"
    resumed = run_cli("batch", source, "-o", out, "--model", config_file, "--json")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["skipped_already_done"] + summary["done"] == summary["total"] == 15
    assert summary["skipped_already_done"] >= 3
    unbroken = tmp_path / "unbroken.jsonl"
    assert run_cli("batch", source, "-o", unbroken, "--model", config_file).exit_code == 0
    got, expected = records(out), records(unbroken)
    ids = [r["custom_id"] for r in got]
    assert len(ids) == len(set(ids)) == 15
    assert [comparable(r) for r in got] == [comparable(r) for r in expected]
    assert sum(r["response"] is not None and r["response"]["status_code"] == 200 for r in got) == 13


# -- the demo model, the command's pieces -------------------------------------------------------------

WITHOUT_FASTAPI = """
import sys
for name in ("fastapi", "uvicorn", "starlette"):
    sys.modules[name] = None  # any import of them fails
from anymodal.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_example_batch_on_the_demo_model_without_fastapi(tmp_path):
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_FASTAPI, "batch", "examples/batch.jsonl", "-o", str(out), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    total = len((ROOT / "examples" / "batch.jsonl").read_text().splitlines())
    assert (summary["model"], summary["total"], summary["succeeded"]) == ("builtin:demo", total, total)
    answers = {r["custom_id"]: r["response"]["body"] for r in records(out)}
    replies = {
        key: body["choices"][0]["message"]["content"] for key, body in answers.items() if "choices" in body
    }
    assert "circle" in replies["circle"] and "rises" in replies["tone"] and "near" in replies["depth"]
    assert "right" in replies["video"] and "hot" in replies["thermal"] and "running" in replies["imu"]
    low, high = (item["embedding"] for item in answers["sound-embedding"]["data"])
    assert len(low) == len(high) == len(answers["circle-embedding"]["data"][0]["embedding"]) > 0
    assert "built-in demo model" in result.stderr  # its notes, as serve and chat show them


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_only_on_a_terminal_and_only_with_tqdm(monkeypatch):
    screen = Terminal()
    bar = ProgressBar(3, 1, screen)
    bar.update({"response": {"status_code": 200}})
    bar.update({"response": None, "error": {"code": "invalid_json"}})
    bar.close()
    assert "anymodal batch" in screen.getvalue() and "3/3" in screen.getvalue()
    assert "failed=1" in screen.getvalue()
    piped = io.StringIO()
    quiet = ProgressBar(3, 0, piped)
    quiet.update({"response": {"status_code": 200}})
    quiet.close()
    assert piped.getvalue() == ""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm not installed
    plain = Terminal()
    missing = ProgressBar(3, 0, plain)
    missing.update({"response": {"status_code": 200}})
    missing.close()
    assert missing.bar is None and plain.getvalue() == ""
