"""Servers for the serve tests: an application on a free loopback port in this process
(``live_server``, ``serve_app``), and ``anymodal serve`` itself in its own process (``demo_server``:
the built-in demo model, started once for the whole run)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from anymodal.contract.bridge import CachedReply
from anymodal.testing import save_scripted_llm

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port for the ``with`` block; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="session")
def write_toy_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``write_toy_model(reply, modalities=("toy", "toy_alt"))``: the config file of a model whose
    scripted LLM answers ``reply`` to everything, with the toy modalities (``anymodal.testing.toy``:
    one token per ``.npy`` input through the linear projector; toy_alt: the mlp projector)."""

    def write(reply: str, modalities: Sequence[str] = ("toy", "toy_alt")) -> Path:
        directory = tmp_path_factory.mktemp("toy-model")
        save_scripted_llm(directory / "llm", reply)
        config = directory / "anymodal.yaml"
        listed = ", ".join(f"{name}: {{}}" for name in modalities)
        config.write_text(
            f"model:\n  llm: {{path: {directory / 'llm'}}}\n  template: plain\n"
            f"  modalities: {{{listed}}}\ngeneration: {{max_new_tokens: 16}}\n"
        )
        return config

    return write


@pytest.fixture
def replace_generation(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Any, Callable[..., Iterator[str]]], None]:
    """``replace_generation(session, pieces)``: the session's bridge answers with ``pieces(config)``'s
    text instead of its LLM, with or without a kept KV cache (which then stays unused)."""

    def replace(session: Any, pieces: Callable[..., Iterator[str]]) -> None:
        bridge = session.model.bridge
        monkeypatch.setattr(bridge, "supports_batching", False)  # every reply through generate
        monkeypatch.setattr(bridge, "generate", lambda embeds, mask, config: pieces(config))
        monkeypatch.setattr(
            bridge, "generate_cached", lambda embeds, config, past: CachedReply(pieces(config))
        )

    return replace


@pytest.fixture(scope="session")
def live_server() -> Callable[[Any], contextlib.AbstractContextManager[str]]:
    """``with live_server(app) as base_url:``: ``app`` served on a free loopback port in a thread."""
    return _live_server


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], str]]:
    """``serve_app(app)``: the app served until the test ends; returns its base URL."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(_live_server(app))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServeProcess:
    """A running ``anymodal serve``: its base URL and process."""

    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def _serve_process(args: Sequence[str] = (), start_s: float = 90) -> Iterator[ServeProcess]:
    """``anymodal serve`` on a free port, its output in a temporary file (a pipe nobody reads would
    fill up with the log and stall the server)."""
    port = free_port()
    command = [sys.executable, "-m", "anymodal", "serve", "--port", str(port), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        served = ServeProcess(f"http://127.0.0.1:{port}", process)
        try:
            deadline = time.monotonic() + start_s
            while True:
                try:
                    if httpx.get(f"{served.url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    log.seek(0)
                    raise RuntimeError(
                        f"anymodal serve did not start:\n{log.read().decode(errors='replace')}"
                    )
                time.sleep(0.1)
            yield served
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def demo_server() -> Iterator[ServeProcess]:
    """``anymodal serve`` on the built-in demo model, started once and shared by the tests."""
    with _serve_process() as served:
        yield served
