"""``anymodal serve``: the official openai client against a live server on 127.0.0.1.

The model is a scripted LLM with a known reply and the toy modalities (toy: one token per input
through the linear projector; toy_alt: the mlp projector), loaded once for the module and served
by several applications (plain, with an API key, a queue of 0, remote media allowed).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import http.server
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from click.testing import CliRunner

from anymodal.cli import cli
from anymodal.config import load_config
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import load_registry
from anymodal.contract.specs import Message
from anymodal.runtime.chat import ChatMessage, ChatSession
from anymodal.runtime.embedding import embed_files
from anymodal.runtime.processor import Attachment, Turn
from anymodal.serve.app import ServeOptions, create_app
from anymodal.serve.errors import ApiError
from anymodal.serve.media import suffix_for
from anymodal.testing import toy

ROOT = Path(__file__).resolve().parents[2]
REPLY = "It hums softly."
MODEL = "toy-model"
LIMIT_MB = 1.0


@pytest.fixture(scope="module")
def registry():
    return load_registry(plugins=[toy])


@pytest.fixture(scope="module")
def config_file(write_toy_model) -> Path:
    return write_toy_model(REPLY)


@pytest.fixture(scope="module")
def session(config_file, registry) -> ChatSession:
    return ChatSession.from_config(load_config(config_file, registry=registry).config, registry)


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("allowed")


def app_for(session, registry, allowed, **options):
    settings = {"model_id": MODEL, "allow_paths": (allowed,), "max_request_mb": LIMIT_MB, **options}
    return create_app(session, registry, ServeOptions(**settings))


@pytest.fixture(scope="module")
def url(session, registry, allowed, live_server):
    with live_server(app_for(session, registry, allowed)) as base:
        yield base


@pytest.fixture(scope="module")
def client(url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=30)


def npy_bytes(value: float, rows: int = 4) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.full((rows, 8), value, dtype=np.float32))
    return buffer.getvalue()


def data_url(data: bytes, media_type: str = "application/x-npy") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def toy_part(value: float | None = None, *, url: str | None = None, kind: str = "toy") -> dict:
    return {"type": f"{kind}_url", f"{kind}_url": {"url": url or data_url(npy_bytes(value or 0.0))}}


def user(*parts) -> dict:
    return {
        "role": "user",
        "content": [p if isinstance(p, dict) else {"type": "text", "text": p} for p in parts],
    }


def post(url: str, body, path: str = "/v1/chat/completions", **options) -> httpx.Response:
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    return httpx.post(f"{url}{path}", content=body, timeout=30, **options)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=10).json()


def expected_prompt_tokens(session: ChatSession, text: str, *modalities: str) -> int:
    attachments = tuple(Attachment(m, session.model.tokens_per_input(m)) for m in modalities)
    return len(session.processor.process([Turn(Message("user", text), attachments)]).input_ids)


# -- replies ---------------------------------------------------------------------------------------


def test_a_plain_reply_counts_its_tokens(client, session):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}]
    )
    [choice] = completion.choices
    assert choice.message.role == "assistant" and choice.message.content == REPLY
    assert choice.finish_reason == "stop" and completion.object == "chat.completion"
    usage = completion.usage
    assert usage.prompt_tokens == expected_prompt_tokens(session, "hello there")
    assert usage.completion_tokens == len(session.model.bridge.tokenize(REPLY))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_streamed_reply_comes_in_openai_chunks(client, url):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[user(toy_part(1.0), "what is it?")],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # piece by piece
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    raw = post(url, {"messages": [user("hi")], "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "stop"


def test_modality_tokens_count_in_the_prompt(client, session):
    completion = client.chat.completions.create(
        model=MODEL, messages=[user(toy_part(1.0), toy_part(2.0, kind="toy_alt"), "compare")]
    )
    assert completion.choices[0].message.content == REPLY
    assert session.model.tokens_per_input("toy_alt") > 1  # the mlp projector keeps every token
    assert completion.usage.prompt_tokens == expected_prompt_tokens(session, "compare", "toy", "toy_alt")
    assert completion.usage.prompt_tokens > expected_prompt_tokens(session, "compare")


def test_media_of_earlier_messages_are_encoded_once_and_reused_across_requests(client, url):
    first, second, third = 11.0, 12.0, 13.0
    before = health(url)["cache"]["encoded"]
    messages = [user(toy_part(first), toy_part(second), "two files")]
    client.chat.completions.create(model=MODEL, messages=messages)
    assert health(url)["cache"]["encoded"] == before + 2
    messages += [{"role": "assistant", "content": REPLY}, user("and this one?", toy_part(third))]
    completion = client.chat.completions.create(model=MODEL, messages=messages)
    assert completion.choices[0].message.content == REPLY
    assert health(url)["cache"]["encoded"] == before + 3  # the first two came from the cache
    # the same bytes in a new conversation, under another part of the request: no encoding
    client.chat.completions.create(model=MODEL, messages=[user("again", toy_part(second))])
    assert health(url)["cache"]["encoded"] == before + 3


def test_a_conversation_sent_again_with_one_more_turn_continues_the_llms_kept_cache(client, url):
    messages = [user(toy_part(21.0), "a new conversation")]
    prompts = [client.chat.completions.create(model=MODEL, messages=messages).usage.prompt_tokens]
    before = health(url)["kv_cache"]
    for question in ("and then?", "and after that?"):
        messages += [{"role": "assistant", "content": REPLY}, user(question)]
        completion = client.chat.completions.create(model=MODEL, messages=messages)
        assert completion.choices[0].message.content == REPLY
        prompts.append(completion.usage.prompt_tokens)
    kept = health(url)["kv_cache"]
    assert kept["hits"] == before["hits"] + 2 and kept["misses"] == before["misses"]
    # Each request ran at most its new turn: the whole prompt before it came from the cache.
    assert kept["reused_positions"] - before["reused_positions"] >= prompts[0] + prompts[1]
    assert 0 < kept["bytes"] <= kept["max_bytes"]


def test_generation_parameters(client, session):
    short = client.chat.completions.create(
        model=MODEL, messages=[user("hi")], max_tokens=2, temperature=0.7, top_p=0.9, seed=3, user="me"
    )
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2
    assert REPLY.startswith(short.choices[0].message.content)
    stopped = client.chat.completions.create(
        model=MODEL, messages=[user("hi")], stop=" softly", max_completion_tokens=16, n=1
    )
    assert stopped.choices[0].message.content == "It hums"
    assert stopped.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model=MODEL, messages=[user("hi")], max_tokens=2, stream=True)
    assert [c.choices[0].finish_reason for c in streamed][-1] == "length"


def test_the_model_list_names_the_modalities_and_their_parts(client, url):
    [card] = client.models.list().data
    assert card.id == MODEL and card.object == "model"
    raw = httpx.get(f"{url}/v1/models").json()["data"][0]
    parts = {m["name"]: m["part_types"] for m in raw["modalities"]}
    assert parts == {"toy": ["toy_url"], "toy_alt": ["toy_alt_url"]}
    assert client.models.retrieve(MODEL).id == MODEL
    assert health(url)["status"] == "ok"


def test_embeddings_are_the_encoders_pooled_outputs(client, url, session, registry, config_file, tmp_path):
    data = npy_bytes(0.5)
    (tmp_path / "a.npy").write_bytes(data)
    config = load_config(config_file, registry=registry).config
    [expected] = embed_files([("toy", tmp_path / "a.npy")], config, registry)
    for encoding in ("float", "base64", None):  # None: the client asks for base64 and decodes it
        given = {"encoding_format": encoding} if encoding else {}
        result = client.embeddings.create(model=MODEL, input=[toy_part(url=data_url(data))], **given)
        [item] = result.data
        vector = item.embedding
        if encoding == "base64":
            vector = np.frombuffer(base64.b64decode(vector), dtype="<f4")
        np.testing.assert_allclose(vector, expected.vector.numpy(), atol=1e-5)
    response = post(url, {"input": "a sentence"}, "/v1/embeddings")
    error = error_of(response, 400)
    assert error["code"] == "text_embeddings_unavailable" and "no text modality" in error["message"]
    error = error_of(post(url, {"input": [[1, 2, 3]]}, "/v1/embeddings"), 400)
    assert error["param"] == "input[0]" and "token arrays" in error["message"]


# -- errors ------------------------------------------------------------------------------------------

CORRUPT = data_url(b"\x93NUMPY this is no array")
ERRORS = [
    ({"logprobs": True}, 400, "logprobs", "unsupported_parameter", "unsupported parameter: 'logprobs'"),
    ({"n": 2}, 400, "n", "invalid_request", "n must be 1"),
    ({"model": "gpt-4o"}, 404, "model", "model_not_found", "the model 'gpt-4o' does not exist"),
    ({"temperature": 5}, 400, "temperature", "invalid_request", "temperature must be at least 0"),
    ({"max_tokens": 0}, 400, "max_tokens", "invalid_request", "max_tokens must be at least 1"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "invalid_request", "stop must be"),
    ({"messages": []}, 400, "messages", "invalid_request", "'messages' must be a non-empty list"),
    (
        {"messages": [user("hi"), {"role": "assistant", "content": "x"}]},
        400,
        "messages[1].role",
        "invalid_request",
        "the last message must be the user's",
    ),
    (
        {"messages": [{"role": "tool", "content": "x"}]},
        400,
        "messages[0].role",
        "invalid_request",
        "unsupported role 'tool'",
    ),
    (
        {"messages": [user({"type": "banana_url", "banana_url": {"url": "data:,x"}})]},
        400,
        "messages[0].content[0].type",
        "invalid_part",
        "unknown content part type 'banana_url' (this server takes: text, ",
    ),
    (
        {"messages": [{"role": "assistant", "content": [toy_part(1.0)]}, user("hi")]},
        400,
        "messages[0].content[0]",
        "invalid_request",
        "only user messages may carry media",
    ),
    (
        {"messages": [user(toy_part(url=CORRUPT))]},
        400,
        "messages[0].content[0]",
        "invalid_input",
        "messages[0].content[0].npy",
    ),
    (
        {"messages": [user(toy_part(url="data:application/x-npy;base64,"))]},
        400,
        "messages[0].content[0]",
        "invalid_input",
        "toy file is empty: messages[0].content[0].npy",
    ),
    (
        {"messages": [user(toy_part(url=data_url(b"\x89PNG....", "image/png")))]},
        400,
        "messages[0].content[0]",
        "invalid_input",
        "toy does not accept .png: messages[0].content[0].png",
    ),
    (
        {"messages": [user(toy_part(url="data:application/x-npy;base64,@@not base64@@"))]},
        400,
        "messages[0].content[0]",
        "invalid_input",
        "the data is not valid base64",
    ),
    (
        {"messages": [user({"type": "image_url", "image_url": {"url": data_url(b"x", "image/png")}})]},
        400,
        "messages[0].content[0]",
        "invalid_request",
        "was not built with the image modality (it accepts: toy, toy_alt)",
    ),
    (
        {"messages": [user({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}})]},
        400,
        "messages[0].content[0]",
        "invalid_request",
        "was not built with the audio modality",
    ),
    (
        {"messages": [user("<toy> and <toy>", toy_part(1.0))]},
        400,
        None,
        "invalid_request",
        "2 <toy> placeholders but 1 toy input",
    ),
]


@pytest.mark.parametrize(("change", "status", "param", "code", "message"), ERRORS)
def test_bad_requests_get_openai_errors_and_the_server_goes_on(
    url, client, change, status, param, code, message
):
    body = {"model": MODEL, "messages": [user("hello")], **change}
    error = error_of(post(url, body), status)
    assert (error["param"], error["code"]) == (param, code)
    assert message in error["message"] and "Traceback" not in error["message"]
    assert "anymodal-serve-" not in error["message"]  # the server's temporary folder stays its own
    assert error["type"] == ("invalid_request_error")
    assert (
        client.chat.completions.create(model=MODEL, messages=[user("still there?")])
        .choices[0]
        .message.content
        == REPLY
    )


def test_the_openai_client_sees_the_errors(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[user(toy_part(url=CORRUPT))])
    assert caught.value.status_code == 400 and caught.value.code == "invalid_input"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=[user("hi")])


def test_bodies_routes_and_methods(url):
    assert error_of(post(url, b"{not json"), 400)["code"] == "invalid_json"
    assert error_of(post(url, b""), 400)["message"].startswith("the request body is empty")
    assert error_of(post(url, b"[1, 2]"), 400)["message"] == "the request body must be a JSON object"
    missing = error_of(httpx.get(f"{url}/v1/nothing"), 404)
    assert missing == {
        "message": "no such endpoint: GET /v1/nothing",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }
    wrong = httpx.get(f"{url}/v1/chat/completions")
    assert error_of(wrong, 405)["code"] == "method_not_allowed" and wrong.headers["allow"] == "POST"


def test_too_large_bodies_get_413_by_length_and_by_reading(url, client):
    big = json.dumps({"messages": [user("x" * int(LIMIT_MB * 2**20))]}).encode()
    error = error_of(post(url, big), 413)
    assert error["code"] == "request_too_large" and "limit of 1 MB" in error["message"]

    def chunked():  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    response = httpx.post(f"{url}/v1/chat/completions", content=chunked(), timeout=30)
    assert "content-length" not in response.request.headers
    assert error_of(response, 413)["code"] == "request_too_large"
    assert (
        client.chat.completions.create(model=MODEL, messages=[user("hi")]).choices[0].message.content == REPLY
    )


# -- what requests may reach -------------------------------------------------------------------------


def test_a_data_urls_media_type_picks_the_files_suffix(registry):
    spec = dataclasses.replace(registry.modalities["toy"], file_kinds=(".npy", ".m4v", ".ecg"))
    assert suffix_for("application/octet-stream", spec) == ".npy"  # says nothing: the first kind
    assert suffix_for("video/x-m4v", spec) == ".m4v"  # the subtype names one of its kinds
    assert suffix_for("application/x-ecg", spec) == ".ecg"
    assert suffix_for("Image/PNG", spec) == ".png"  # the usual suffix; the loader judges the kind
    with pytest.raises(ApiError, match="unsupported media type 'application/x-nothing-known' for toy"):
        suffix_for("application/x-nothing-known", spec)


def test_files_only_under_allowed_folders(url, client, allowed, tmp_path):
    (allowed / "inside.npy").write_bytes(npy_bytes(3.0))
    outside = tmp_path / "outside.npy"
    outside.write_bytes(npy_bytes(4.0))
    (allowed / "link.npy").symlink_to(outside)
    for given in (str(allowed / "inside.npy"), (allowed / "inside.npy").as_uri()):
        reply = client.chat.completions.create(model=MODEL, messages=[user(toy_part(url=given), "what?")])
        assert reply.choices[0].message.content == REPLY
    for given in (str(outside), f"{allowed}/../{outside.parent.name}/outside.npy", str(allowed / "link.npy")):
        error = error_of(post(url, {"messages": [user(toy_part(url=given))]}), 400)
        assert (
            error["code"] == "path_not_allowed"
            and "not under a folder this server allows" in error["message"]
        )


@pytest.fixture
def media_site(tmp_path):
    """A web server on 127.0.0.1 serving ``tmp_path``."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    site.handle_error = lambda request, address: None  # type: ignore[method-assign]  # a client that hung up
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{site.server_address[1]}"
    site.shutdown()
    site.server_close()


def test_remote_urls_are_refused_unless_allowed(url, session, registry, allowed, media_site, serve_app):
    folder, site = media_site
    (folder / "a.npy").write_bytes(npy_bytes(5.0))
    (folder / "huge.npy").write_bytes(npy_bytes(6.0, rows=int(LIMIT_MB * 2**20 / 32) + 10))
    error = error_of(post(url, {"messages": [user(toy_part(url=f"{site}/a.npy"))]}), 400)
    assert error["code"] == "remote_url_refused" and "--allow-remote" in error["message"]
    remote = serve_app(app_for(session, registry, allowed, allow_remote=True))
    assert post(remote, {"messages": [user(toy_part(url=f"{site}/a.npy"), "what?")]}).status_code == 200
    error = error_of(post(remote, {"messages": [user(toy_part(url=f"{site}/huge.npy"))]}), 400)
    assert error["code"] == "input_too_large"
    error = error_of(post(remote, {"messages": [user(toy_part(url=f"{site}/missing.npy"))]}), 400)
    assert error["code"] == "fetch_failed" and error["message"].startswith(f"cannot fetch {site}/missing.npy")


def test_the_api_key(session, registry, allowed, serve_app):
    keyed = serve_app(app_for(session, registry, allowed, api_key="s3cret"))
    wrong = openai.OpenAI(base_url=f"{keyed}/v1", api_key="guess", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model=MODEL, messages=[user("hi")])
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    error = error_of(post(keyed, {"messages": [user("hi")]}), 401)
    assert error["message"].startswith("missing API key") and error["type"] == "invalid_request_error"
    assert error_of(httpx.get(f"{keyed}/v1/models"), 401)["code"] == "invalid_api_key"
    assert health(keyed)["status"] == "ok"  # health checks need no key
    right = openai.OpenAI(base_url=f"{keyed}/v1", api_key="s3cret", max_retries=0)
    assert (
        right.chat.completions.create(model=MODEL, messages=[user("hi")]).choices[0].message.content == REPLY
    )


# -- one request at a time ---------------------------------------------------------------------------


class SlowReplies:
    """Stands in for the bridge's generate: a piece every 20 ms, for a minute, noting when closed."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def __call__(self, config):
        try:
            for _ in range(3000):
                time.sleep(0.02)
                yield "la "
        finally:
            self.stopped.set()


def test_a_full_queue_gets_429_with_retry_after(
    session, registry, allowed, serve_app, monkeypatch, replace_generation
):
    busy = serve_app(app_for(session, registry, allowed, max_queue=0))
    client = openai.OpenAI(base_url=f"{busy}/v1", api_key="unused", max_retries=0, timeout=30)
    slow = SlowReplies()
    replace_generation(session, slow)
    stream = client.chat.completions.create(model=MODEL, messages=[user("sing")], stream=True)
    assert next(stream).choices[0].delta.role == "assistant"
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=[user("me too")])
    assert caught.value.status_code == 429 and caught.value.response.headers["retry-after"] == "1"
    error = caught.value.response.json()["error"]
    assert error["code"] == "queue_full" and error["type"] == "rate_limit_error"
    stream.close()
    assert slow.stopped.wait(10)
    monkeypatch.undo()
    _wait_idle(busy)
    assert (
        client.chat.completions.create(model=MODEL, messages=[user("now?")]).choices[0].message.content
        == REPLY
    )


def test_a_client_that_goes_away_stops_its_generation(url, client, session, monkeypatch, replace_generation):
    slow = SlowReplies()
    replace_generation(session, slow)
    stream = client.chat.completions.create(model=MODEL, messages=[user("sing")], stream=True)
    pieces = iter(stream)
    next(pieces)
    assert next(pieces).choices[0].delta.content == "la "
    stream.close()
    assert slow.stopped.wait(10), "the generation went on after the client left"
    monkeypatch.undo()
    _wait_idle(url)
    assert (
        client.chat.completions.create(model=MODEL, messages=[user("hi")]).choices[0].message.content == REPLY
    )


class FailingReplies:
    """A bridge's generate that fails after its first piece."""

    def __call__(self, config):
        yield "so "
        raise RuntimeError("the accelerator fell over")


def test_a_reply_that_fails_half_way_is_an_error_not_a_dead_server(
    url, client, session, monkeypatch, replace_generation
):
    replace_generation(session, FailingReplies())
    with pytest.raises(openai.APIError, match="internal error: RuntimeError: the accelerator fell over"):
        list(client.chat.completions.create(model=MODEL, messages=[user("hi")], stream=True))
    error = error_of(post(url, {"messages": [user("hi")]}), 500)
    assert error == {
        "message": "internal error: RuntimeError: the accelerator fell over",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    monkeypatch.undo()
    _wait_idle(url)
    assert (
        client.chat.completions.create(model=MODEL, messages=[user("hi")]).choices[0].message.content == REPLY
    )


def test_the_cache_of_encodings_is_bounded(session, registry, allowed, serve_app):
    small = serve_app(app_for(session, registry, allowed, cache_size=1))
    for value in (21.0, 22.0, 21.0):
        assert post(small, {"messages": [user(toy_part(value), "what?")]}).status_code == 200
        assert health(small)["cache"]["encodings"] == 1
    assert health(small)["cache"]["encoded"] == 3  # the first one was dropped to keep the second


def _wait_idle(url: str) -> None:
    deadline = time.monotonic() + 10
    while health(url)["queue"]["admitted"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert health(url)["queue"]["admitted"] == 0


# -- the runtime's part ------------------------------------------------------------------------------


def test_a_session_for_a_whole_conversation(session):
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "first"),
        ChatMessage("assistant", "one"),
        ChatMessage("user", "second"),
        ChatMessage("user", "third"),
    ]
    fork, text = session.for_messages(messages)
    assert text == "second\nthird" and fork.system_prompt == "Be brief."
    assert [(t.user, t.reply) for t in fork.history] == [("first", "one")]
    assert fork.model is session.model and session.history == [] and session.system_prompt is None
    assert "".join(fork.ask(text)) == REPLY and session.history == []
    greeting, _ = session.for_messages([ChatMessage("assistant", "Hello!"), ChatMessage("user", "hi")])
    assert [(t.user, t.reply) for t in greeting.history] == [("", "Hello!")]
    with pytest.raises(UsageError, match="the last message must be the user's"):
        session.for_messages([ChatMessage("user", "hi"), ChatMessage("assistant", "yes")])


# -- the command -------------------------------------------------------------------------------------


def test_the_command_loads_once_warns_off_loopback_and_serves(
    use_plugins, config_file, monkeypatch, live_server
):
    use_plugins(toy)
    import uvicorn

    answers = []

    def run(app, host, port, log_level):  # instead of listening on host:port, answer one request here
        with live_server(app) as base:
            client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
            answers.append(
                (host, port, client.chat.completions.create(model=str(config_file), messages=[user("hi")]))
            )

    monkeypatch.setattr(uvicorn, "run", run)
    result = CliRunner().invoke(
        cli,
        ["serve", "--model", str(config_file), "--host", "0.0.0.0", "--port", "9123"],
    )
    assert result.exit_code == 0, result.output
    [(host, port, completion)] = answers
    assert (host, port, completion.choices[0].message.content) == ("0.0.0.0", 9123, REPLY)
    warnings = [line for line in result.stderr.splitlines() if "without --api-key" in line]
    assert warnings == [
        "warning: listening on 0.0.0.0 without --api-key: anyone who can reach port 9123 can use this model"
    ]
    assert "untrained" in result.stderr  # the model's notes, as chat shows them
    quiet = CliRunner().invoke(
        cli, ["serve", "--model", str(config_file), "--api-key", "k", "--host", "10.1.2.3"]
    )
    assert quiet.exit_code == 0, quiet.output
    assert "without --api-key" not in quiet.stderr


def test_importing_the_serving_commands_imports_none_of_their_heavy_libraries():
    """The commands' modules load torch, FastAPI, uvicorn and Ray only when they run: batch needs
    no FastAPI, serve no Ray, and `anymodal --help` none of them."""
    modules = "anymodal, anymodal.serve, anymodal.serve.batch, anymodal.serve.cluster"
    code = (
        f"import sys, {modules}, anymodal.cli.serve, anymodal.cli.batch\n"
        "print(*(name in sys.modules for name in ('fastapi', 'uvicorn', 'torch', 'ray')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"] * 4


def test_the_demo_model_over_http_says_circle(demo_server):
    """`anymodal serve` itself, in its own process, on the built-in demo model."""
    client = openai.OpenAI(base_url=f"{demo_server.url}/v1", api_key="unused", max_retries=0)
    image = data_url((ROOT / "examples" / "red_circle.png").read_bytes(), "image/png")
    completion = client.chat.completions.create(
        model="builtin:demo",
        messages=[user({"type": "image_url", "image_url": {"url": image}}, "What shape is this?")],
    )
    assert "circle" in completion.choices[0].message.content
    sound = base64.b64encode((ROOT / "examples" / "low_rising_tone.wav").read_bytes()).decode()
    heard = client.chat.completions.create(
        model="builtin:demo",
        messages=[
            user(
                {"type": "input_audio", "input_audio": {"data": sound, "format": "wav"}},
                "How does the tone change over time?",
            )
        ],
    )
    assert "rises" in heard.choices[0].message.content
    depth = data_url((ROOT / "examples" / "near_object_depth.png").read_bytes(), "image/png")
    streamed = client.chat.completions.create(
        model="builtin:demo",
        messages=[
            user({"type": "depth_url", "depth_url": {"url": depth}}, "Is the object close to the camera?")
        ],
        stream=True,
    )
    assert "near" in "".join(chunk.choices[0].delta.content or "" for chunk in streamed)
