"""``anymodal serve`` decoding concurrent requests together (anymodal.serve.scheduler): the answers are
the ones each request gets alone, requests join a batch that is already running, and a failure,
a bad request or a client that goes away touches only what it should.

The model is a tiny Llama with random weights (so every prompt gets its own reply) and the toy
modalities, served twice from one loaded session: with ``max_batch=8`` and with ``max_batch=1``.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from anymodal.config import load_config
from anymodal.contract.registry import load_registry
from anymodal.runtime.chat import ChatSession
from anymodal.runtime.tiny_llm import save_tiny_llm
from anymodal.serve.app import ServeOptions, create_app
from anymodal.serve.errors import ApiError
from anymodal.serve.worker import Worker
from anymodal.testing import toy

MODEL = "tiny"
QUESTIONS = [f"Question {i}: what is shown, and why {'?' * (i % 3 + 1)}" for i in range(12)]


@pytest.fixture(scope="module")
def registry():
    return load_registry(plugins=[toy])


@pytest.fixture(scope="module")
def session(registry, tmp_path_factory) -> ChatSession:
    directory = tmp_path_factory.mktemp("tiny-model")
    save_tiny_llm(directory / "llm", seed=5)
    config = directory / "anymodal.yaml"
    config.write_text(
        f"model:\n  llm: {{path: {directory / 'llm'}}}\n  template: plain\n"
        "  modalities: {toy: {}}\ngeneration: {max_new_tokens: 12}\n"
    )
    return ChatSession.from_config(load_config(config, registry=registry).config, registry)


def app_of(session, registry, **options: Any):
    return create_app(session, registry, ServeOptions(model_id=MODEL, **options))


@pytest.fixture(scope="module")
def urls(session, registry, live_server) -> Iterator[tuple[str, str]]:
    """(batched, one at a time) base URLs serving the same session."""
    with (
        live_server(app_of(session, registry, max_batch=8, batch_wait_ms=50)) as batched,
        live_server(app_of(session, registry, max_batch=1)) as alone,
    ):
        yield batched, alone


def client_of(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def toy_part(value: float) -> dict:
    buffer = io.BytesIO()
    np.save(buffer, np.full((4, 8), value, dtype=np.float32))
    url = "data:application/x-npy;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"type": "toy_url", "toy_url": {"url": url}}


def ask(url: str, question: str, value: float | None = None, **extra: Any) -> str:
    content: list[dict] = [{"type": "text", "text": question}]
    if value is not None:
        content.insert(0, toy_part(value))
    reply = client_of(url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], **extra
    )
    return reply.choices[0].message.content or ""


def health(url: str) -> dict:
    return httpx.get(f"{url}/health").json()


def wait_idle(url: str) -> None:
    deadline = time.monotonic() + 20
    while health(url)["queue"]["admitted"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert health(url)["queue"]["admitted"] == 0


def in_parallel(function: Callable[..., str], *arguments: list[Any]) -> list[str]:
    with ThreadPoolExecutor(len(arguments[0])) as pool:
        return list(pool.map(function, *arguments))


def test_concurrent_requests_are_decoded_together_with_the_answers_they_get_alone(urls):
    batched, alone = urls
    values: list[float | None] = [None if i % 3 == 0 else float(i) for i in range(len(QUESTIONS))]
    before = health(batched)["batch"]
    together = in_parallel(lambda q, v: ask(batched, q, v), QUESTIONS, values)
    one_by_one = [ask(alone, q, v) for q, v in zip(QUESTIONS, values, strict=True)]
    assert together == one_by_one
    assert len(set(together)) > len(QUESTIONS) // 2  # replies that differ: each row is its own
    after = health(batched)["batch"]
    assert after["max_batch"] == 8 and after["running"] == 0
    assert after["widest"] > 1  # some step decoded several requests at once
    assert after["steps"] - before["steps"] < sum(12 for _ in QUESTIONS)  # fewer steps than alone
    assert health(alone)["batch"] is None


def test_inputs_of_requests_that_start_together_are_encoded_in_one_batch(urls, session, monkeypatch):
    batched, _ = urls
    calls: list[int] = []
    encoder = session.model.encoders["toy"]
    original = encoder.forward

    def counting(batch: Any) -> Any:
        calls.append(int(batch.shape[0]))
        return original(batch)

    monkeypatch.setattr(encoder, "forward", counting)
    values = [100.0 + i for i in range(6)]
    in_parallel(lambda v: ask(batched, "What is it?", v), values)
    assert sum(calls) == 6  # each new input encoded once
    assert max(calls) > 1  # and some of them together, across requests


def test_a_request_joins_a_batch_already_decoding(urls, session):
    batched, alone = urls
    long = {"max_tokens": 40}
    first = threading.Thread(target=lambda: results.append(ask(batched, QUESTIONS[0], None, **long)))
    results: list[str] = []
    steps = health(batched)["batch"]["steps"]
    first.start()
    while health(batched)["batch"]["steps"] < steps + 3 and first.is_alive():
        time.sleep(0.005)
    late = ask(batched, QUESTIONS[1], 3.0)
    first.join()
    assert late == ask(alone, QUESTIONS[1], 3.0)
    assert results == [ask(alone, QUESTIONS[0], None, **long)]


def test_a_conversation_continues_its_kept_cache_in_the_batch(urls):
    batched, alone = urls
    turn_one = [{"role": "user", "content": [toy_part(7.0), {"type": "text", "text": "What is it?"}]}]
    client = client_of(batched)
    first = client.chat.completions.create(model=MODEL, messages=turn_one).choices[0].message.content
    hits = health(batched)["kv_cache"]["hits"]
    follow = [*turn_one, {"role": "assistant", "content": first}, {"role": "user", "content": "And then?"}]
    second = client.chat.completions.create(model=MODEL, messages=follow).choices[0].message.content
    assert health(batched)["kv_cache"]["hits"] == hits + 1
    again = client_of(alone).chat.completions.create(model=MODEL, messages=follow)
    assert second == again.choices[0].message.content


def test_streams_from_the_batch_arrive_in_pieces(urls):
    batched, alone = urls
    stream = client_of(batched).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTIONS[2]}], stream=True
    )
    chunks = [chunk.choices[0] for chunk in stream if chunk.choices]
    text = "".join(choice.delta.content or "" for choice in chunks)
    assert chunks[0].delta.role == "assistant" and chunks[-1].finish_reason in ("stop", "length")
    assert len([c for c in chunks if c.delta.content]) > 1
    assert text == ask(alone, QUESTIONS[2])


def test_a_bad_request_fails_alone_and_the_batch_goes_on(urls):
    batched, alone = urls
    good = [QUESTIONS[3], QUESTIONS[4]]

    def one(question: str) -> str:
        if question == "bad":  # a placeholder with no input to fill it
            try:
                ask(batched, "<toy> twice <toy>", 1.0)
            except openai.BadRequestError as error:
                return f"400 {error.body['code'] if isinstance(error.body, dict) else ''}"
            return "no error"
        return ask(batched, question)

    answers = in_parallel(one, [good[0], "bad", good[1]])
    assert answers[1].startswith("400")
    assert [answers[0], answers[2]] == [ask(alone, q) for q in good]
    wait_idle(batched)


@pytest.fixture
def slow_forwards(session) -> Iterator[None]:
    """Every forward of the LLM takes 50 ms longer."""
    handle = session.model.bridge.module.register_forward_pre_hook(lambda *_: time.sleep(0.05))
    yield
    handle.remove()


def test_a_client_that_goes_away_leaves_the_batch(session, registry, serve_app, slow_forwards):
    url = serve_app(app_of(session, registry, max_batch=4, batch_wait_ms=0))
    stream = client_of(url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTIONS[5]}], stream=True, max_tokens=200
    )
    assert next(stream).choices[0].delta.role == "assistant"
    assert health(url)["batch"]["running"] == 1
    stream.close()
    wait_idle(url)
    steps = health(url)["batch"]["steps"]
    time.sleep(0.3)
    assert health(url)["batch"]["steps"] == steps and health(url)["batch"]["running"] == 0


def test_a_full_batch_and_queue_get_429(session, registry, serve_app, slow_forwards):
    url = serve_app(app_of(session, registry, max_batch=2, max_queue=1, batch_wait_ms=0))
    client = client_of(url)
    streams = [
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": q}], stream=True, max_tokens=200
        )
        for q in QUESTIONS[:2]
    ]
    for stream in streams:
        next(stream)
    waiting = threading.Thread(target=lambda: ask(url, QUESTIONS[2], max_tokens=2))
    waiting.start()
    deadline = time.monotonic() + 10
    while health(url)["queue"]["admitted"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(openai.RateLimitError):
        ask(url, QUESTIONS[3])
    for stream in streams:
        stream.close()
    waiting.join(timeout=30)
    wait_idle(url)


def test_a_failing_forward_fails_every_row_and_the_next_batch_works(session, registry, serve_app):
    url = serve_app(app_of(session, registry, max_batch=4, batch_wait_ms=100))
    module = session.model.bridge.module
    calls = {"n": 0}

    def fail_on_the_third(*_: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the accelerator fell over")

    handle = module.register_forward_pre_hook(fail_on_the_third)
    try:
        errors = in_parallel(lambda q: _error_of(url, q), QUESTIONS[6:9])
    finally:
        handle.remove()
    assert errors == ["internal error: RuntimeError: the accelerator fell over"] * 3
    wait_idle(url)
    assert ask(url, QUESTIONS[6]) == ask(url, QUESTIONS[6])  # a fresh batch answers


def _error_of(url: str, question: str) -> str:
    try:
        ask(url, question)
    except openai.InternalServerError as error:
        return str(error.body["message"] if isinstance(error.body, dict) else error)
    return "no error"


def test_admission_counts_the_batchs_slots():
    worker = Worker(max_queue=1, slots=3)
    tickets = [worker.admit() for _ in range(4)]
    with pytest.raises(ApiError) as caught:
        worker.admit()
    assert caught.value.status == 429 and "1 request(s) are waiting" in caught.value.message
    tickets[0].release()
    worker.admit()
    with pytest.raises(ValueError, match="slots"):
        Worker(max_queue=0, slots=0)


def test_the_command_batches_as_the_config_says(tmp_path: Path):
    from anymodal.cli.serve import serve_options
    from anymodal.config.load import load_config as load

    loaded = load("builtin:demo", ["generation.max_batch=3", "generation.batch_wait_ms=2"])
    options = serve_options(loaded, (), False, 1.0, max_queue=4)
    assert (options.max_batch, options.batch_wait_ms, options.max_queue) == (3, 2, 4)


def test_anymodal_batch_answers_lines_together_in_the_inputs_order(session, registry, tmp_path: Path):
    import json

    from anymodal.serve import batch as batch_run
    from anymodal.serve.service import Service

    source = tmp_path / "in.jsonl"
    lines = [
        {
            "custom_id": f"q{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": question}]},
        }
        for i, question in enumerate(QUESTIONS[:8])
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    outputs = {}
    for size in (4, 1):
        service = Service(session, registry, ServeOptions(model_id=MODEL, max_batch=size, batch_wait_ms=20))
        try:
            out = tmp_path / f"out-{size}.jsonl"
            summary = batch_run.run(batch_run.plan(source, out), service)
            assert summary.succeeded == 8
            outputs[size] = [
                (record["custom_id"], record["response"]["body"]["choices"][0]["message"]["content"])
                for record in batch_run.records(out)
            ]
            if size > 1:
                assert service.scheduler.widest > 1
        finally:
            service.thread.shutdown()
    assert [custom_id for custom_id, _ in outputs[4]] == [f"q{i}" for i in range(8)]
    assert outputs[4] == outputs[1]
