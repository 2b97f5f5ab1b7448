"""A local OpenAI-style server whose every answer a test decides: replies, failures, hangs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def completion(
    text: str, finish: str = "stop", prompt_tokens: int = 11, completion_tokens: int = 4
) -> dict[str, Any]:
    """A chat completion in OpenAI's shape."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass
class Answer:
    """What the server sends: a status, a body (a dict as JSON, a str as it is), headers, and how
    long it waits first."""

    status: int = 200
    body: dict[str, Any] | str = field(default_factory=lambda: completion("A red square."))
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Asked:
    """One request the server got."""

    path: str
    auth: str | None
    body: dict[str, Any]


class StubTeacher:
    """Servers on free loopback ports that answer each POST with ``answer(asked)``, shut down when
    the test ends. ``Answer`` and ``completion`` are here for the tests' answers (test modules do
    not import conftest)."""

    Answer = Answer
    completion = staticmethod(completion)

    def __init__(self) -> None:
        self.servers: list[ThreadingHTTPServer] = []

    def serve(self, answer: Callable[[Asked], Answer]) -> str:
        """Start a server; return its API base URL (``.../v1``)."""

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                asked = Asked(
                    self.path, self.headers.get("authorization"), json.loads(self.rfile.read(length))
                )
                reply = answer(asked)
                time.sleep(reply.delay_s)
                payload = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting, as it was meant to

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.fixture
def stub_teacher() -> Iterator[StubTeacher]:
    stub = StubTeacher()
    yield stub
    for server in stub.servers:
        server.shutdown()
        server.server_close()
