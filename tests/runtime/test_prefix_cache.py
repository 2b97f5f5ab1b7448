"""The LLM's KV cache kept across turns (anymodal.runtime.prefix_cache): the store on its own, then
whole chats whose greedy replies must be the same with reuse as without, on the demo model and on
a tiny random Llama, through every case that makes the history's tokens differ from what ran."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from anymodal.config import load_config
from anymodal.contract.bridge import KVCache
from anymodal.contract.registry import get_registry, load_registry
from anymodal.contract.specs import LoraSettings
from anymodal.runtime.chat import ChatSession
from anymodal.runtime.prefix_cache import IN_PLACE_TAIL, PrefixStore, position_keys
from anymodal.runtime.processor import Slot
from anymodal.testing import CHATML_TEMPLATE, save_tiny_llm, toy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


# -- the store ---------------------------------------------------------------------------------------


class ListCache(KVCache):
    """A cache of ``values`` (one per position), 10 bytes a position."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = list(values)

    @property
    def length(self) -> int:
        return len(self.values)

    @property
    def nbytes(self) -> int:
        return 10 * len(self.values)

    def crop(self, length: int) -> None:
        del self.values[length:]

    def prefix(self, length: int) -> ListCache:
        return ListCache(self.values[:length])


class Input:
    def __init__(self, key: str) -> None:
        self.key = key


def test_position_keys_name_each_token_and_what_fills_each_slot():
    slots = [Slot("image", 0, 1, 2), Slot("audio", (1, 2), 4, 1)]
    keys = position_keys([5, 0, 0, 6, 0, 7], slots, [Input("a"), Input("b"), Input("c")])
    assert keys == (5, ("input", ("a",), 0), ("input", ("a",), 1), 6, ("input", ("b", "c"), 0), 7)


def test_a_prompt_continues_the_entry_sharing_most_and_always_runs_its_last_position():
    store = PrefixStore(max_bytes=1000)
    assert store.take((1, 2, 3)) == (None, 0)
    assert store.put((1, 2, 3, 4), ListCache("abcd"))
    assert store.put((9, 9), ListCache("zz"))
    cache, shared = store.take((1, 2, 3, 4))  # the whole prompt is held: the last position runs again
    assert (shared, cache.values) == (3, list("abc"))
    assert [e.keys for e in store.entries] == [(9, 9)]  # taken whole (cut in place): gone from the store
    assert (store.hits, store.misses, store.reused_positions) == (1, 1, 3)


def test_an_entry_sharing_only_a_start_is_copied_and_stays():
    store = PrefixStore(max_bytes=10_000)
    long = tuple(range(IN_PLACE_TAIL + 10))
    store.put(long, ListCache(long))
    cache, shared = store.take((0, 1, 2, 3, 99))
    assert (shared, cache.values) == (4, [0, 1, 2, 3])
    assert [len(e.keys) for e in store.entries] == [len(long)]  # still whole, for its own conversation
    assert store.entries[0].cache.values == list(long)
    near = (*long[:-IN_PLACE_TAIL], -1)
    cache, shared = store.take(near)
    assert shared == len(long) - IN_PLACE_TAIL and store.entries == []  # a short tail: cut in place


def test_the_store_keeps_within_its_bytes_newest_first_and_drops_what_a_new_entry_covers():
    store = PrefixStore(max_bytes=100)
    assert not store.put((1,) * 11, ListCache("x" * 11))  # 110 bytes: never kept
    assert not store.put((1, 2), ListCache("abc"))  # keys and positions disagree
    store.put((1, 2), ListCache("ab"))
    store.put((1, 2, 3), ListCache("abc"))  # covers (1, 2)
    assert [e.keys for e in store.entries] == [(1, 2, 3)]
    store.put((4,) * 5, ListCache("d" * 5))
    store.put((5,) * 4, ListCache("e" * 4))  # 30 + 50 + 40 > 100: the oldest goes
    assert [e.keys for e in store.entries] == [(4,) * 5, (5,) * 4]
    assert store.nbytes == 90
    with pytest.raises(ValueError, match="more than 0"):
        PrefixStore(0)


# -- chats with and without reuse --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    return save_tiny_llm(tmp_path_factory.mktemp("tiny-llm"), chat_template=CHATML_TEMPLATE)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("toy-inputs")
    made = {}
    for name, value in (("one", 0.5), ("two", -1.0)):
        made[name] = folder / f"{name}.npy"
        np.save(made[name], np.full((4, 8), value, dtype=np.float32))
    return made


def tiny_config(tmp_path: Path, llm: Path, template: str = "chatml", **generation: Any) -> Path:
    settings = {"max_new_tokens": 12, **generation}
    config = tmp_path / f"tiny-{template}.yaml"
    config.write_text(
        f"model:\n  llm: {{path: {llm}}}\n  template: {template}\n  system_prompt: You are terse.\n"
        f"  modalities: {{toy: {{}}}}\ngeneration: {settings}\n".replace("'", "")
    )
    return config


#: A chat: ("attach", modality, file), ("ask", text) or ("reset",).
Step = tuple[str, ...]


def converse(
    source: Path | None,
    steps: Sequence[Step],
    reuse: bool,
    registry: Any,
    prepare: Callable[[ChatSession], None] = lambda session: None,
) -> tuple[list[str], ChatSession]:
    """The replies to ``steps`` with the KV cache kept (``reuse``) or not; a failing ask is "!"."""
    overrides = [] if reuse else ["generation.kv_cache_mb=0"]
    session = ChatSession.from_config(load_config(source, overrides, registry).config, registry)
    assert (session.prefixes is not None) == reuse
    prepare(session)
    replies = []
    for step in steps:
        if step[0] == "attach":
            session.attach(step[1], step[2])
        elif step[0] == "reset":
            session.reset()
        else:
            try:
                replies.append("".join(session.ask(step[1])))
            except RuntimeError:
                replies.append("!")
    return replies, session


def same_with_and_without_reuse(source, steps, registry, prepare=lambda session: None) -> ChatSession:
    expected, _ = converse(source, steps, False, registry, prepare)
    replies, session = converse(source, steps, True, registry, prepare)
    assert replies == expected
    return session


def asks(*questions: str) -> list[Step]:
    return [("ask", question) for question in questions]


def test_six_turns_on_the_demo_model_are_the_same_and_each_turn_runs_only_its_new_tokens():
    steps = [
        ("attach", "image", str(EXAMPLES / "red_circle.png")),
        *asks("What shape is this?", "What colour is the shape?", "Where is the shape?"),
        ("attach", "audio", str(EXAMPLES / "low_rising_tone.wav")),
        *asks("How does the tone change over time?", "What shape is this?", "Describe the sound."),
    ]
    session = same_with_and_without_reuse(None, steps, get_registry())
    store = session.prefixes
    assert store is not None and (store.hits, store.misses) == (5, 1)
    # Turns two to six ran fewer than 40 positions each (their new message, the template's tokens
    # around it, and the last reply's ids that re-tokenised differently), of prompts that grow.
    lengths = prompt_lengths(session)
    assert lengths == sorted(lengths) and sum(lengths[1:]) > 500
    assert sum(lengths[1:]) - store.reused_positions < 5 * 40


def prompt_lengths(session: ChatSession) -> list[int]:
    """The length of each turn's prompt, as the session built it (a chat with no reset)."""
    lengths = []
    for index, turn in enumerate(session.history):
        before = ChatSession(
            session.model,
            session.processor,
            session.generation,
            session.system_prompt,
            session.history[:index],
        )
        lengths.append(len(session.processor.process(before._conversation(turn)).input_ids))
    return lengths


CASES = {
    # A reply cut at a stop string: the history's text ends before it, the cache ran past it.
    "stop string": ({"stop": ["e"]}, asks("hello there", "and then?", "why so?", "go on", "more", "end")),
    # Replies cut at max_new_tokens, whose last id never ran, and ids that re-tokenise differently.
    "max tokens": ({"max_new_tokens": 3}, asks("one", "two", "three", "four", "five", "six")),
    "sampling with a seed": (
        {"do_sample": True, "temperature": 0.9, "top_p": 0.9, "seed": 7},
        asks("hello", "again", "and again", "once more", "last", "done"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_tiny_llama_chat_is_the_same_with_reuse(case, tiny_llm, inputs, tmp_path):
    settings, steps = CASES[case]
    registry = load_registry(plugins=[toy])
    config = tiny_config(tmp_path, tiny_llm, **settings)
    steps = [
        ("attach", "toy", str(inputs["one"])),
        *steps[:3],
        ("attach", "toy", str(inputs["two"])),
        *steps[3:],
    ]
    session = same_with_and_without_reuse(config, steps, registry)
    assert session.prefixes is not None and session.prefixes.hits == 5


def test_a_reset_reuses_only_the_system_prompt_and_media_are_told_apart(tiny_llm, inputs, tmp_path):
    registry = load_registry(plugins=[toy])
    one, two = str(inputs["one"]), str(inputs["two"])
    steps = [
        ("attach", "toy", one),
        *asks("what is it?", "and now?"),
        ("reset",),
        ("attach", "toy", two),  # same words, other input: its positions differ from the first chat's
        *asks("what is it?", "and now?"),
        ("reset",),
        ("attach", "toy", one),
        *asks("what is it?"),
    ]
    session = same_with_and_without_reuse(tiny_config(tmp_path, tiny_llm), steps, registry)
    store = session.prefixes
    assert store is not None and store.hits == 4 and store.misses == 1


def test_a_template_that_changes_earlier_turns_falls_back_where_they_differ(
    tmp_path_factory, inputs, tmp_path
):
    """The tokenizer's own template marks the last user message, so appending a turn changes an
    earlier one: only the positions before that change may come from the cache."""
    marking = CHATML_TEMPLATE.replace(
        "message['content']", "(('[LAST] ' if loop.last else '') + message['content'])"
    )
    llm = save_tiny_llm(tmp_path_factory.mktemp("marking-llm"), chat_template=marking)
    registry = load_registry(plugins=[toy])
    steps = [("attach", "toy", str(inputs["one"])), *asks("first", "second", "third", "fourth")]
    session = same_with_and_without_reuse(tiny_config(tmp_path, llm, template="auto"), steps, registry)
    assert session.prefixes is not None and session.prefixes.hits == 3


def test_a_turn_that_fails_half_way_through_a_forward_is_not_reused(tiny_llm, inputs, tmp_path):
    """Turn three's prompt forward (which continues turn two's cache) fails inside the second
    layer, after the first has added its keys: the cache is left with layers of two lengths, and
    must never be continued."""
    registry = load_registry(plugins=[toy])
    steps = [("attach", "toy", str(inputs["one"])), *asks("a", "b", "c", "d", "e")]

    def failing(session: ChatSession) -> None:
        layer = session.model.bridge.module.model.layers[1]
        forward, prompts = layer.forward, []

        def flaky(hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if hidden_states.shape[1] > 1:  # a prompt's forward, not one fed id
                prompts.append(hidden_states.shape[1])
                if len(prompts) == 3:
                    raise RuntimeError("injected")
            return forward(hidden_states, *args, **kwargs)

        layer.forward = flaky

    session = same_with_and_without_reuse(tiny_config(tmp_path, tiny_llm), steps, registry, failing)
    assert [t.interrupted for t in session.history] == [False, False, True, False, False]
    assert session.prefixes is not None and session.prefixes.misses == 2  # turn one, and after the failure


def test_a_lora_model_is_the_same_with_reuse(tiny_llm, inputs, tmp_path):
    registry = load_registry(plugins=[toy])

    def with_lora(session: ChatSession) -> None:
        bridge = session.model.bridge
        bridge.add_lora(LoraSettings(r=4, alpha=8, dropout=0.0))
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, parameter in bridge.module.named_parameters():
                if "lora_" in name:  # seeded (PEFT draws A at random and starts B at zero)
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        bridge.module.eval()

    steps = [("attach", "toy", str(inputs["one"])), *asks("a", "b", "c", "d")]
    same_with_and_without_reuse(tiny_config(tmp_path, tiny_llm), steps, registry, with_lora)


def test_conversations_sent_whole_reuse_the_previous_request(tiny_llm, inputs, tmp_path):
    """A server's requests each carry the whole conversation: the store finds the one before."""
    from anymodal.runtime.chat import ChatMessage

    registry = load_registry(plugins=[toy])
    base = ChatSession.from_config(
        load_config(tiny_config(tmp_path, tiny_llm), [], registry).config, registry
    )
    image = base.model.prepare("toy", inputs["one"])
    messages = [ChatMessage("user", "first", (image,))]
    replies = []
    for question in ("second", "third"):
        session, text = base.for_messages(messages)
        replies.append("".join(session.ask(text)))
        messages += [ChatMessage("assistant", replies[-1]), ChatMessage("user", question)]
    session, text = base.for_messages(messages)
    replies.append("".join(session.ask(text)))
    assert base.prefixes is not None and base.prefixes.hits == 2
    fresh = ChatSession.from_config(
        load_config(tiny_config(tmp_path, tiny_llm), ["generation.kv_cache_mb=0"], registry).config, registry
    )
    alone, text = fresh.for_messages(messages)
    assert "".join(alone.ask(text)) == replies[-1]
