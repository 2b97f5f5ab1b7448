"""Servers for the serve tests: an application on a free loopback port in this process until the
test ends (``serve_app``), and ``anymodal serve`` on the built-in demo model in its own process
(``demo_server``, started once for the whole run). Both stand on tests/conftest.py's servers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from anymodal.contract.bridge import CachedReply
from anymodal.testing import save_scripted_llm

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture
def serve_app(
    live_server: Callable[[Any], contextlib.AbstractContextManager[str]],
) -> Iterator[Callable[[Any], str]]:
    """``serve_app(app)``: the app served until the test ends; returns its base URL."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(live_server(app))


@pytest.fixture(scope="session")
def demo_server(serve_process: Callable[..., contextlib.AbstractContextManager[Any]]) -> Iterator[Any]:
    """``anymodal serve`` on the built-in demo model, started once and shared by the tests."""
    with serve_process() as served:
        yield served
