"""The teacher client against a local HTTP server that answers from a script: replies, 429s with
Retry-After, 5xx, hangs, bad JSON, wrong shapes, refusals; and a port nothing listens on."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from anymodal.contract.errors import UsageError
from anymodal.data.teacher import Teacher, TeacherError, TeacherSettings

MESSAGES = [{"role": "user", "content": "Describe the image."}]


@dataclass
class Script:
    """Answers in turn, the last one for ever after; and every request seen."""

    steps: list[Any]
    seen: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, asked: Any) -> Any:
        with self.lock:
            self.seen.append(asked)
            return self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]


@pytest.fixture
def server(stub_teacher: Any) -> tuple[str, Script]:
    script = Script([stub_teacher.Answer()])
    return stub_teacher.serve(script), script


@pytest.fixture
def Answer(stub_teacher: Any) -> Any:
    return stub_teacher.Answer


@pytest.fixture
def completion(stub_teacher: Any) -> Callable[..., dict[str, Any]]:
    return stub_teacher.completion


def make_teacher(url: str, sleeps: list[float], **settings: Any) -> Teacher:
    return Teacher(
        TeacherSettings(url=url, model="teacher-model", **{"retries": 3, **settings}),
        sleep=sleeps.append,
        jitter=lambda: 1.0,
    )


def test_a_reply_is_read_with_its_finish_reason_tokens_and_tries(
    server: tuple[str, Script], Answer: Any, completion: Any
) -> None:
    url, script = server
    script.steps = [Answer(body=completion("Question: what?\n===\nAnswer: red.", "length"))]
    sleeps: list[float] = []
    with make_teacher(url, sleeps, api_key="sk-test", max_tokens=77, temperature=0.5) as teacher:
        reply = teacher.complete(MESSAGES)
    assert (reply.text, reply.finish_reason) == ("Question: what?\n===\nAnswer: red.", "length")
    assert (reply.prompt_tokens, reply.completion_tokens, reply.attempts) == (11, 4, 1)
    assert sleeps == []
    (request,) = script.seen
    assert request.path == "/v1/chat/completions"
    assert request.auth == "Bearer sk-test"
    assert request.body == {
        "model": "teacher-model",
        "messages": MESSAGES,
        "max_tokens": 77,
        "temperature": 0.5,
    }


def test_no_key_sends_no_authorization_and_missing_usage_counts_zero(
    server: tuple[str, Script], Answer: Any, completion: Any
) -> None:
    url, script = server
    body = completion("")
    del body["usage"]
    body["choices"][0]["message"]["content"] = None
    script.steps = [Answer(body=body)]
    with make_teacher(url, []) as teacher:
        reply = teacher.complete(MESSAGES)
    assert script.seen[0].auth is None
    assert (reply.text, reply.prompt_tokens, reply.completion_tokens) == ("", 0, 0)


def test_429_waits_as_retry_after_says_then_succeeds(server: tuple[str, Script], Answer: Any) -> None:
    url, script = server
    script.steps = [
        Answer(429, {"error": {"message": "rate limited", "type": "rate_limit"}}, {"Retry-After": "2.5"}),
        Answer(429, {"error": {"message": "rate limited"}}, {"Retry-After": "9999"}),
        Answer(),
    ]
    sleeps: list[float] = []
    with make_teacher(url, sleeps, max_backoff_s=30.0) as teacher:
        reply = teacher.complete(MESSAGES)
    assert reply.attempts == 3
    assert sleeps == [2.5, 30.0]  # Retry-After honoured, up to max_backoff_s


def test_5xx_backs_off_doubling_up_to_the_cap(server: tuple[str, Script], Answer: Any) -> None:
    url, script = server
    script.steps = [Answer(500, "oops"), Answer(502, "bad gateway"), Answer(503, {"error": "busy"}), Answer()]
    sleeps: list[float] = []
    with make_teacher(url, sleeps, backoff_s=1.5, max_backoff_s=4.0) as teacher:
        assert teacher.complete(MESSAGES).attempts == 4
    assert sleeps == [1.5, 3.0, 4.0]


def test_jitter_takes_up_to_half_of_the_wait_off(server: tuple[str, Script], Answer: Any) -> None:
    url, script = server
    script.steps = [Answer(500, "oops"), Answer()]
    sleeps: list[float] = []
    teacher = Teacher(
        TeacherSettings(url=url, model="m", backoff_s=2.0), sleep=sleeps.append, jitter=lambda: 0.0
    )
    teacher.complete(MESSAGES)
    teacher.close()
    assert sleeps == [1.0]


def test_a_hanging_server_is_retried_after_the_timeout(server: tuple[str, Script], Answer: Any) -> None:
    url, script = server
    script.steps = [Answer(delay_s=1.0), Answer()]
    with make_teacher(url, [], timeout_s=0.2) as teacher:
        reply = teacher.complete(MESSAGES)
    assert reply.attempts == 2


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{not json", "a reply that is not JSON: '{not json'"),
        ({"object": "error"}, "a reply that is not a chat completion"),
        ({"choices": []}, "a reply that is not a chat completion"),
        ({"choices": [{"message": {"content": 3}}]}, "a reply that is not a chat completion"),
    ],
)
def test_a_malformed_200_is_retried_and_then_fails_the_request(
    server: tuple[str, Script], body: dict[str, Any] | str, problem: str, Answer: Any
) -> None:
    url, script = server
    script.steps = [Answer(body=body)]
    sleeps: list[float] = []
    with make_teacher(url, sleeps, retries=2) as teacher, pytest.raises(TeacherError) as caught:
        teacher.complete(MESSAGES)
    assert len(script.seen) == 3 and len(sleeps) == 2
    assert not caught.value.fatal
    assert f"the teacher at {url} failed a request 3 times; last: {problem}" in str(caught.value)


def test_persistent_5xx_fails_the_request_naming_the_servers_message(
    server: tuple[str, Script], Answer: Any
) -> None:
    url, script = server
    script.steps = [Answer(503, {"error": {"message": "model is loading"}})]
    with make_teacher(url, [], retries=1) as teacher, pytest.raises(TeacherError) as caught:
        teacher.complete(MESSAGES)
    assert not caught.value.fatal
    assert (
        caught.value.message
        == f"the teacher at {url} failed a request 2 times; last: HTTP 503: model is loading"
    )


@pytest.mark.parametrize(
    ("status", "key", "hint"),
    [
        (401, None, "set $OPENAI_API_KEY"),
        (403, "sk-wrong", "check the key in $OPENAI_API_KEY"),
        (404, None, "check --teacher-url"),
    ],
)
def test_refusals_no_retry_can_mend_are_fatal_at_once(
    server: tuple[str, Script], status: int, key: str | None, hint: str, Answer: Any
) -> None:
    url, script = server
    script.steps = [Answer(status, {"error": {"message": "nope"}})]
    sleeps: list[float] = []
    with make_teacher(url, sleeps, api_key=key) as teacher, pytest.raises(TeacherError) as caught:
        teacher.complete(MESSAGES)
    assert caught.value.fatal and len(script.seen) == 1 and sleeps == []
    assert (
        caught.value.message
        == f"the teacher at {url} (model 'teacher-model') refused us: HTTP {status}: nope"
    )
    assert caught.value.hint is not None and caught.value.hint.startswith(hint)


def test_another_4xx_fails_that_request_only_without_retrying(
    server: tuple[str, Script], Answer: Any
) -> None:
    url, script = server
    script.steps = [Answer(400, {"error": {"message": "prompt is too long"}})]
    with make_teacher(url, []) as teacher, pytest.raises(TeacherError) as caught:
        teacher.complete(MESSAGES)
    assert not caught.value.fatal and len(script.seen) == 1
    assert str(caught.value) == f"the teacher at {url} refused a request: HTTP 400: prompt is too long"


def test_a_teacher_nothing_listens_for_is_fatal_after_the_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{port}/v1"
    with make_teacher(url, sleeps, retries=2) as teacher, pytest.raises(TeacherError) as caught:
        teacher.complete(MESSAGES)
    assert caught.value.fatal and len(sleeps) == 2
    assert caught.value.message.startswith(
        f"the teacher at http://127.0.0.1:{port}/v1 cannot be reached (3 tries"
    )


def test_many_threads_share_one_teacher(server: tuple[str, Script], Answer: Any) -> None:
    url, script = server
    script.steps = [Answer(delay_s=0.05)]
    with make_teacher(url, []) as teacher:
        threads = [threading.Thread(target=teacher.complete, args=(MESSAGES,)) for _ in range(8)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(script.seen) == 8
    assert time.monotonic() - started < 8 * 0.05  # they overlapped


def test_without_httpx_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(UsageError) as caught:
        Teacher(TeacherSettings(url="http://127.0.0.1:1/v1", model="m"))
    assert caught.value.hint == "pip install 'anymodal[data]'"
