"""Fixtures for the hf bridge tests: a tiny Llama saved to disk and loaded through the bridge."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from anymodal_hf.bridge import HFBridge

import anymodal
from anymodal.testing import save_tiny_llm

PROMPT = "### Human: What colour is the shape in the image?\n### Assistant:"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture
def bridge(tiny_dir: Path) -> HFBridge:
    return HFBridge.load(anymodal.LLMSettings(path=str(tiny_dir)), "cpu", "float32")


Prompt = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture
def make_prompt() -> Prompt:
    """``make_prompt(bridge, text=PROMPT) -> (inputs_embeds [1, seq, hidden], attention_mask [1, seq])``,
    the embedded bos + ``text``, as the runtime would hand them to the bridge."""

    def embed(bridge: HFBridge, text: str = PROMPT) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.tensor([[bridge.bos_token_id, *bridge.tokenize(text)]])
        with torch.no_grad():
            return bridge.embed(ids), torch.ones_like(ids)

    return embed


@pytest.fixture
def interrupt_forward() -> Callable[[HFBridge, int], contextlib.AbstractContextManager[None]]:
    """``with interrupt_forward(bridge, n):``: the bridge's model raises KeyboardInterrupt at the end
    of its ``n``-th forward inside the block (as Ctrl-C would), and forwards normally after it."""

    @contextlib.contextmanager
    def interrupting(bridge: HFBridge, at: int) -> Iterator[None]:
        calls = 0

        def interrupt(*_: object) -> None:
            nonlocal calls
            calls += 1
            if calls == at:
                raise KeyboardInterrupt

        handle = bridge.module.register_forward_hook(interrupt)
        try:
            yield
        finally:
            handle.remove()

    return interrupting
