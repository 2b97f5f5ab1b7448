"""Shared fixtures: fake installed distributions whose entry points importlib.metadata finds, and
servers on loopback ports (an app in a thread, ``anymodal serve`` in its own process)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anymodal.contract.registry import set_registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write a plugin module plus a ``.dist-info`` folder with a real ``entry_points.txt``.

    This is what pip leaves in site-packages, so discovery goes through importlib.metadata
    exactly as for an installed plugin, without running pip.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(dist: str, module: str, source: str, *, version: str = "1.0", requires: str = "") -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        requires_line = f"Requires-Dist: {requires}\n" if requires else ""
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{requires_line}"
        )
        (info / "entry_points.txt").write_text(f"[anymodal]\n{module} = {module}\n")
        sys.modules.pop(module, None)
        return site

    return install


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """No test sees another test's registry."""
    set_registry(None)
    yield
    set_registry(None)


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
def live_server() -> Callable[[Any], contextlib.AbstractContextManager[str]]:
    """``with live_server(app) as base_url:``: ``app`` served on a free loopback port in a thread."""
    return _live_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServeProcess:
    """A running ``anymodal serve``: its base URL and process."""

    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def serve_process() -> Callable[..., contextlib.AbstractContextManager[ServeProcess]]:
    """``with serve_process(args) as served:``: ``anymodal serve *args`` in its own process, on a
    free loopback port, until the block ends (``served.url`` is its base URL)."""
    return _serve_process


@contextlib.contextmanager
def _serve_process(args: Sequence[str] = (), start_s: float = 90) -> Iterator[ServeProcess]:
    """``anymodal serve`` on a free port, its output in a temporary file (a pipe nobody reads would
    fill up with the log and stall the server)."""
    import httpx

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
