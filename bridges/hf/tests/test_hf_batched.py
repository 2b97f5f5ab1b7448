"""Batched decoding (anymodal_hf.batched, HFBridge.generate_batch): every row's reply is the one its
prompt gets alone, rows leave the batch (and its KV cache) when they end, and the contract's
default generates one prompt at a time for a bridge that cannot batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from anymodal_hf.bridge import HFBridge
from anymodal_hf.generation import ForwardArgs

import anymodal
from anymodal.testing import scripted_llama, tiny_llama, train_bpe_tokenizer

Config = anymodal.GenerationConfig

TEXTS = (
    "Hi",
    "### Human: What colour is the shape in the image?\n### Assistant:",
    "a red circle",
    "The quick brown fox jumps over the lazy dog, again and again and again.",
    "x y z w v",
)


@pytest.fixture(params=["fixture", "gqa-one-kv-head", "mha"])
def llm(request: pytest.FixtureRequest) -> HFBridge:
    """The tiny Llama of conftest (4 heads over 2 KV heads), one with a single KV head, one without GQA."""
    if request.param == "fixture":
        bridge: HFBridge = request.getfixturevalue("bridge")
        return bridge
    tokenizer = train_bpe_tokenizer()
    kv_heads = 1 if request.param == "gqa-one-kv-head" else 4
    return HFBridge(tiny_llama(len(tokenizer), num_heads=4, num_kv_heads=kv_heads, seed=3), tokenizer)


def prompts_of(bridge: HFBridge, texts: Sequence[str] = TEXTS) -> list[torch.Tensor]:
    with torch.no_grad():
        return [bridge.embed(torch.tensor([[bridge.bos_token_id, *bridge.tokenize(t)]])) for t in texts]


def ones(prompt: torch.Tensor) -> torch.Tensor:
    return torch.ones(prompt.shape[:2], dtype=torch.long)


def alone_ids(bridge: HFBridge, prompt: torch.Tensor, config: anymodal.GenerationConfig) -> list[int]:
    return list(bridge.generate_ids(prompt, ones(prompt), config))


def alone_text(bridge: HFBridge, prompt: torch.Tensor, config: anymodal.GenerationConfig) -> str:
    return "".join(bridge.generate(prompt, ones(prompt), config))


class Forwards:
    """Records, for every forward of ``bridge``'s model, the batch it ran and its KV cache's batch."""

    def __init__(self, bridge: HFBridge) -> None:
        self.sizes: list[int] = []
        self.cache_rows: list[int | None] = []
        self._cache_name = ForwardArgs(bridge.module).cache
        self._handle = bridge.module.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        inputs = kwargs.get("inputs_embeds")
        self.sizes.append((inputs if inputs is not None else kwargs["input_ids"]).shape[0])
        cache = kwargs.get(self._cache_name)
        self.cache_rows.append(None if cache is None else _cache_batch(cache))

    def __enter__(self) -> Forwards:
        return self

    def __exit__(self, *_: object) -> None:
        self._handle.remove()


def _cache_batch(cache: Any) -> int:
    layers = getattr(cache, "layers", None)
    keys = layers[0].keys if layers is not None else cache.key_cache[0]
    return int(keys.shape[0])


def alone_run(bridge: HFBridge, prompt: torch.Tensor, config: anymodal.GenerationConfig) -> tuple[str, int]:
    """The reply to ``prompt`` alone, and how many forwards it took."""
    with Forwards(bridge) as forwards:
        text = alone_text(bridge, prompt, config)
    return text, len(forwards.sizes)


def test_greedy_rows_equal_their_prompts_generated_alone(llm: HFBridge) -> None:
    prompts = prompts_of(llm)
    assert len({p.shape[1] for p in prompts}) == len(prompts)  # every row padded differently
    config = Config(max_new_tokens=16)
    _, rows = llm.batch_decoder(prompts, [config] * len(prompts))
    texts = ["".join(row) for row in rows]
    for prompt, row, text in zip(prompts, rows, texts, strict=True):
        expected = alone_ids(llm, prompt, config)
        assert row.ids == expected
        assert text == llm.decode(expected)
        assert len(set(expected)) > 1  # a reply stuck on one token would prove little
    assert len({tuple(row.ids) for row in rows}) == len(prompts)


def test_rows_leave_when_they_end_and_the_others_go_on_unchanged(llm: HFBridge) -> None:
    prompts = prompts_of(llm)
    free = alone_text(llm, prompts[1], Config(max_new_tokens=30))
    stop = free[6:9]  # ends the reply somewhere in its middle
    assert len(free.split(stop)[0]) < len(free)
    configs = [
        Config(max_new_tokens=3),
        Config(max_new_tokens=30, stop=(stop,)),
        Config(max_new_tokens=12),
        Config(max_new_tokens=20),
        Config(max_new_tokens=1),
    ]
    with Forwards(llm) as forwards:
        rows = llm.generate_batch(prompts, configs)
        texts = ["".join(row) for row in rows]
    runs = [alone_run(llm, p, c) for p, c in zip(prompts, configs, strict=True)]
    assert texts == [text for text, _ in runs]
    assert texts[1] == free.split(stop)[0]
    # The k-th forward runs every row whose alone run takes k forwards or more; the cache matches.
    alone = [forwards for _, forwards in runs]
    expected = [sum(n > k for n in alone) for k in range(max(alone))]
    assert forwards.sizes == expected
    assert expected[0] == 5 and expected[-1] == 1 and len(set(expected)) >= 4
    assert forwards.cache_rows == [None, *expected[1:]]


def test_finish_reasons_and_a_row_of_no_tokens_never_runs(bridge: HFBridge) -> None:
    prompts = prompts_of(bridge)[:3]
    configs = [Config(max_new_tokens=0), Config(max_new_tokens=2), Config(max_new_tokens=4)]
    with Forwards(bridge) as forwards:
        decoder, rows = bridge.batch_decoder(prompts, configs)
        assert rows[0].finish_reason == "length" and decoder.batch_size == 0
        steps = 0
        while decoder.step():
            steps += 1
    assert forwards.sizes == [2, 2, 1, 1] and steps == 3
    assert [len(row.ids) for row in rows] == [0, 2, 4]
    assert [row.finish_reason for row in rows] == ["length"] * 3
    assert decoder.batch_size == 0 and not decoder.step()  # spent: a no-op
    assert list(rows[0]) == []


def test_a_row_closed_early_leaves_and_the_others_are_unchanged(llm: HFBridge) -> None:
    prompts = prompts_of(llm)[:4]
    config = Config(max_new_tokens=16)
    with Forwards(llm) as forwards:
        rows = llm.generate_batch(prompts, [config] * 4)
        first = [next(rows[2]) for _ in range(2)]
        closed_at = len(forwards.sizes)  # forwards run with row 2
        rows[2].close()
        with pytest.raises(StopIteration):
            next(rows[2])
        texts = ["".join(row) for row in rows]
    assert "".join(first) == alone_text(llm, prompts[2], config)[: len("".join(first))]
    assert texts[2] == ""  # what was left unread went with it
    runs = [alone_run(llm, prompts[i], config) for i in (0, 1, 3)]
    assert [texts[i] for i in (0, 1, 3)] == [text for text, _ in runs]
    # Two pieces took two forwards or more with every row; then row 2 left, the others at their ends.
    alone = [forwards for _, forwards in runs]
    assert closed_at >= 2 and min(alone) > closed_at
    assert forwards.sizes == [
        1 + sum(n > k for n in alone) if k < closed_at else sum(n > k for n in alone)
        for k in range(max(alone))
    ]


def test_sampling_rows_draw_what_they_draw_alone(llm: HFBridge) -> None:
    prompts = prompts_of(llm)[:4]
    configs = [
        Config(max_new_tokens=14, do_sample=True, temperature=1.0, seed=11),
        Config(max_new_tokens=14),
        Config(max_new_tokens=14, do_sample=True, temperature=0.7, top_p=0.9, seed=5),
        Config(max_new_tokens=9, do_sample=True, temperature=1.3, top_p=0.95, seed=11),
    ]
    decoder, rows = llm.batch_decoder(prompts, configs)
    while decoder.step():
        pass
    for prompt, config, row in zip(prompts, configs, rows, strict=True):
        assert row.ids == alone_ids(llm, prompt, config)
    greedy = alone_ids(llm, prompts[0], Config(max_new_tokens=14))
    assert rows[0].ids != greedy  # sampling really sampled


def test_a_batch_of_one_is_generate(bridge: HFBridge, make_prompt) -> None:
    embeds, mask = make_prompt(bridge)
    for config in (
        Config(max_new_tokens=20),
        Config(max_new_tokens=20, do_sample=True, top_p=0.9, seed=2),
        Config(max_new_tokens=0),
    ):
        (row,) = bridge.generate_batch([embeds], [config])
        assert list(row) == list(bridge.generate(embeds, mask, config))  # the same pieces, too


REPLY = "A red circle.\nUser: what"  # eleven distinct tokens, so a scripted model can say it


def test_stop_ids_trim_tokens_and_stop_strings_per_row_are_generates() -> None:
    tokenizer = train_bpe_tokenizer()
    bridge = HFBridge(scripted_llama(tokenizer, REPLY), tokenizer)
    script = bridge.tokenize(REPLY)
    with torch.no_grad():  # bare bos and prompts that end outside the script
        prompts = [bridge.embed(torch.tensor([[bridge.bos_token_id] * n])) for n in (1, 3, 2, 5, 4, 2)]
    configs = [
        Config(max_new_tokens=100),
        Config(max_new_tokens=100, stop_token_ids=(script[5],)),
        Config(max_new_tokens=100, stop_token_ids=(script[5],), trim_tokens=2),
        Config(max_new_tokens=100, trim_tokens=2),
        Config(max_new_tokens=4, trim_tokens=1),
        Config(max_new_tokens=100, stop=("ed ci", "User:")),
    ]
    _, rows = bridge.batch_decoder(prompts, configs)
    texts = ["".join(row) for row in rows]
    for prompt, config, row, text in zip(prompts, configs, rows, texts, strict=True):
        assert text == alone_text(bridge, prompt, config)
        if not config.stop:
            assert row.ids == alone_ids(bridge, prompt, config)
    cut = [REPLY, *(bridge.decode(script[:n]) for n in (5, 4, len(script) - 1, 3)), "A r"]
    assert texts == cut
    assert [row.finish_reason for row in rows] == ["stop", "stop", "stop", "stop", "length", "stop"]


def test_multibyte_rows_stream_whole_characters() -> None:
    reply = "Café日語🙂!"  # every byte of é, 日, 語 and 🙂 is its own token here
    tokenizer = train_bpe_tokenizer()
    bridge = HFBridge(scripted_llama(tokenizer, reply), tokenizer)
    with torch.no_grad():
        prompts = [bridge.embed(torch.tensor([[bridge.bos_token_id] * n])) for n in (1, 4)]
    rows = bridge.generate_batch(prompts, [Config(max_new_tokens=50), Config(max_new_tokens=9)])
    pieces = [list(row) for row in rows]
    for prompt, config, got in zip(prompts, (50, 9), pieces, strict=True):
        assert got == list(bridge.generate(prompt, ones(prompt), Config(max_new_tokens=config)))
    assert "".join(pieces[0]) == reply and not any("\ufffd" in p for p in pieces[0])


def test_rows_read_in_turn_step_the_batch_once_for_all(bridge: HFBridge) -> None:
    """A server's way: step, then drain every row; reading rows in turn runs no extra forward."""
    prompts = prompts_of(bridge)[:3]
    config = Config(max_new_tokens=10)
    with Forwards(bridge) as forwards:
        decoder, rows = bridge.batch_decoder(prompts, [config] * 3)
        drained: list[list[str]] = [[], [], []]
        while decoder.step():
            for row, pieces in zip(rows, drained, strict=True):
                pieces.extend(row.drain())
        for row, pieces in zip(rows, drained, strict=True):
            pieces.extend(row.drain())
    assert forwards.sizes == [3] * 10
    for prompt, pieces in zip(prompts, drained, strict=True):
        assert pieces == list(bridge.generate(prompt, ones(prompt), config))


def test_a_failing_forward_ends_every_row_and_leaves_the_bridge_usable(
    bridge: HFBridge, interrupt_forward
) -> None:
    prompts = prompts_of(bridge)[:3]
    rows = bridge.generate_batch(prompts, [Config(max_new_tokens=20)] * 3)
    with interrupt_forward(bridge, 3), pytest.raises(KeyboardInterrupt):
        list(rows[0])
    assert not torch.is_inference_mode_enabled()
    for row in rows[1:]:
        with pytest.raises(RuntimeError, match="a forward of the batch failed"):
            list(row)
    again = bridge.generate_batch(prompts, [Config(max_new_tokens=5)] * 3)
    assert all(len(list(row)) >= 1 for row in again)


def test_bad_batches_are_refused(bridge: HFBridge) -> None:
    prompts = prompts_of(bridge)[:2]
    with pytest.raises(ValueError, match="2 prompts but 1 generation configs"):
        bridge.generate_batch(prompts, [Config()])
    with pytest.raises(ValueError, match="one non-empty prompt"):
        bridge.generate_batch([torch.cat([prompts[0], prompts[0]])], [Config()])
    assert HFBridge.supports_batching and not anymodal.Bridge.supports_batching


class OneAtATime(anymodal.Bridge):
    """A bridge that cannot batch: its reply to a prompt names the prompt's length."""

    hidden_size = 4
    bos_token_id = None
    eos_token_id = None
    pad_token_id = 0

    def __init__(self) -> None:
        self.started: list[int] = []
        self._module = torch.nn.Linear(4, 4)

    @property
    def module(self) -> torch.nn.Module:
        return self._module

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def chat_template_render(self, messages: Sequence[anymodal.Message], add_generation_prompt: bool) -> None:
        return None

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros((*input_ids.shape, 4))

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        return None, inputs_embeds

    def generate(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, config: anymodal.GenerationConfig
    ) -> Iterator[str]:
        assert attention_mask.shape == inputs_embeds.shape[:2] and bool(attention_mask.all())
        length = inputs_embeds.shape[1]

        def pieces() -> Iterator[str]:
            self.started.append(length)
            for i in range(config.max_new_tokens):
                yield f"{length}.{i} "

        return pieces()

    def add_lora(self, settings: anymodal.LoraSettings) -> None: ...

    def save(self, directory: Path, state_dict: Any = None) -> None: ...


def test_the_contracts_default_generates_one_prompt_at_a_time() -> None:
    bridge = OneAtATime()
    assert not bridge.supports_batching
    prompts = [torch.zeros(1, n, 4) for n in (3, 1, 5)]
    streams = bridge.generate_batch(prompts, [Config(max_new_tokens=n) for n in (2, 1, 3)])
    assert bridge.started == []  # each stream generates when it is read
    assert "".join(streams[2]) == "5.0 5.1 5.2 "
    streams[1].close()  # type: ignore[attr-defined]
    assert "".join(streams[0]) == "3.0 3.1 "
    assert list(streams[1]) == [] and bridge.started == [5, 3]
    with pytest.raises(ValueError, match="1 prompts but 2 generation configs"):
        bridge.generate_batch(prompts[:1], [Config(), Config()])


# -- continuous batching: rows joining a running batch, and rows that keep their cache -----------


def test_rows_added_mid_reply_join_the_running_batch_and_reply_as_alone(llm: HFBridge) -> None:
    prompts = prompts_of(llm)
    config = Config(max_new_tokens=12)
    decoder = llm.open_batch()
    first = [decoder.add(prompt, config) for prompt in prompts[:2]]
    with Forwards(llm) as forwards:
        for _ in range(4):
            decoder.step()
        late = [decoder.add(prompt, config) for prompt in prompts[2:]]
        assert decoder.batch_size == 2  # they wait for the next step
        decoder.step()
        assert decoder.batch_size == 5  # joined: one cache of five rows
        while decoder.step():
            pass
    for prompt, row in zip(prompts, [*first, *late], strict=True):
        assert row.ids == alone_ids(llm, prompt, config)
        assert row.finish_reason in ("length", "stop")
    # the step they joined at: one forward of the running two, one of the three prompts together
    assert forwards.sizes[4:6] == [2, 3]
    assert forwards.cache_rows[6] == 5


def test_a_kept_row_cache_continues_into_the_next_turn_in_another_batch(bridge: HFBridge) -> None:
    turn_one, turn_two, other = prompts_of(bridge, (TEXTS[1], " and then?", TEXTS[3]))
    config = Config(max_new_tokens=8)
    decoder = bridge.open_batch()
    kept = decoder.add(turn_one, config, keep=True)
    unkept = decoder.add(other, config)
    while decoder.step():
        pass
    assert kept.cache is not None and unkept.cache is None
    assert kept.fed_ids == kept.ids[:-1]  # every reply id but the last ran through the model
    assert kept.cache.length == turn_one.shape[1] + len(kept.fed_ids)
    # Turn two continues the kept cache (joining a batch that is already running), after the last
    # reply id, which the cache does not hold yet.
    with torch.no_grad():
        last = bridge.embed(torch.tensor([[kept.ids[-1]]]))
    rest = torch.cat([last, turn_two], dim=1)
    whole = torch.cat([turn_one, bridge.embed(torch.tensor([kept.fed_ids])), rest], dim=1)
    later = bridge.open_batch()
    busy = later.add(other, config)
    later.step()
    row = later.add(rest, config, past=kept.cache, keep=True)
    while later.step():
        pass
    assert row.ids == alone_ids(bridge, whole, config)
    assert busy.ids == unkept.ids
    assert row.cache is not None and row.cache.length == whole.shape[1] + len(row.fed_ids)


def test_rows_wait_for_a_batch_whose_cache_cannot_take_them(
    bridge: HFBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anymodal_hf.batched

    monkeypatch.setattr(anymodal_hf.batched, "joinable", lambda cache: False)
    prompts = prompts_of(bridge)
    decoder = bridge.open_batch()
    early = decoder.add(prompts[0], Config(max_new_tokens=3))
    decoder.step()
    late = decoder.add(prompts[1], Config(max_new_tokens=3))
    decoder.step()
    assert decoder.batch_size == 1 and not late.ids  # waiting while the other runs
    while decoder.step():
        pass
    assert early.ids == alone_ids(bridge, prompts[0], Config(max_new_tokens=3))
    assert late.ids == alone_ids(bridge, prompts[1], Config(max_new_tokens=3))


def test_a_row_closed_while_waiting_never_runs(bridge: HFBridge) -> None:
    prompts = prompts_of(bridge)
    decoder = bridge.open_batch()
    running = decoder.add(prompts[0], Config(max_new_tokens=4))
    decoder.step()
    dropped = decoder.add(prompts[1], Config(max_new_tokens=4))
    dropped.close()
    with Forwards(bridge) as forwards:
        while decoder.step():
            pass
    assert set(forwards.sizes) == {1} and dropped.ids == [] and dropped.finish_reason == "closed"
    assert running.ids == alone_ids(bridge, prompts[0], Config(max_new_tokens=4))


def test_a_long_lived_batch_lets_go_of_the_rows_that_ended(bridge: HFBridge) -> None:
    """A server's batch lives as long as the server: a row it still held after its end would keep
    its reply and its kept cache alive for good."""
    import gc
    import weakref

    decoder = bridge.open_batch()
    staying = decoder.add(prompts_of(bridge)[0], Config(max_new_tokens=30))
    row = decoder.add(prompts_of(bridge)[1], Config(max_new_tokens=2), keep=True)
    gone = weakref.ref(row)
    while not row.finished:
        decoder.step()
    decoder.step()
    assert row.cache is not None and not staying.finished
    del row
    gc.collect()
    assert gone() is None
