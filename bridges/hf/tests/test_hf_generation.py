"""The decode loop: greedy parity with a cache-free decode, sampling, limits, stop strings, streaming."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from anymodal_hf.bridge import HFBridge
from anymodal_hf.generation import decode_loop, next_token

import anymodal
from anymodal.testing import scripted_llama, train_bpe_tokenizer

Config = anymodal.GenerationConfig


def test_greedy_decode_matches_a_cache_free_argmax_decode(bridge: HFBridge, make_prompt) -> None:
    embeds, mask = make_prompt(bridge)
    steps = 16
    ids = list(decode_loop(bridge.module, embeds, mask, Config(max_new_tokens=steps)))

    expected: list[int] = []
    sequence = embeds
    with torch.no_grad():
        for _ in range(steps):
            logits = bridge.module(
                inputs_embeds=sequence, attention_mask=torch.ones(sequence.shape[:2])
            ).logits
            expected.append(int(logits[0, -1].argmax()))
            sequence = torch.cat([sequence, bridge.embed(torch.tensor([expected[-1:]]))], dim=1)
    assert ids == expected
    assert len(set(expected)) > 1  # a decode stuck on one token would prove little

    if bridge.eos_token_id not in expected:
        text = "".join(bridge.generate(embeds, mask, Config(max_new_tokens=steps)))
        assert text == bridge.decode(expected)


def test_left_padding_does_not_change_the_reply(bridge: HFBridge, make_prompt) -> None:
    embeds, mask = make_prompt(bridge)
    padded = torch.cat([bridge.embed(torch.full((1, 3), bridge.pad_token_id)), embeds], dim=1)
    padded_mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), mask], dim=1)
    config = Config(max_new_tokens=12)
    assert list(decode_loop(bridge.module, padded, padded_mask, config)) == list(
        decode_loop(bridge.module, embeds, mask, config)
    )


def test_max_new_tokens_is_respected(bridge: HFBridge, make_prompt) -> None:
    embeds, mask = make_prompt(bridge)
    for limit in (0, 1, 7):
        assert len(list(decode_loop(bridge.module, embeds, mask, Config(max_new_tokens=limit)))) == limit
    assert list(bridge.generate(embeds, mask, Config(max_new_tokens=0))) == []


def test_sampling_is_reproducible_with_a_seed_and_varies_across_seeds(bridge: HFBridge, make_prompt) -> None:
    embeds, mask = make_prompt(bridge)

    def sample(seed: int) -> list[int]:
        config = Config(max_new_tokens=10, do_sample=True, temperature=1.0, top_p=0.95, seed=seed)
        return list(decode_loop(bridge.module, embeds, mask, config))

    assert sample(1) == sample(1)
    assert len({tuple(sample(seed)) for seed in range(4)}) == 4
    greedy = list(decode_loop(bridge.module, embeds, mask, Config(max_new_tokens=10)))
    assert sample(1) != greedy


def test_sampling_degenerates_to_greedy(bridge: HFBridge, make_prompt) -> None:
    embeds, mask = make_prompt(bridge)
    greedy = list(decode_loop(bridge.module, embeds, mask, Config(max_new_tokens=12)))
    for config in (
        Config(max_new_tokens=12, do_sample=True, top_p=1e-6, seed=3),  # nucleus of one token
        Config(max_new_tokens=12, do_sample=True, temperature=0.0, seed=3),  # temperature 0 means greedy
        Config(max_new_tokens=12, do_sample=True, temperature=1e-5, seed=3),  # all mass on the argmax
    ):
        assert list(decode_loop(bridge.module, embeds, mask, config)) == greedy


def test_temperature_applies_before_top_p() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])  # softmax: 0.665, 0.245, 0.090

    def draws(temperature: float) -> set[int]:
        generator = torch.Generator().manual_seed(0)
        config = Config(do_sample=True, temperature=temperature, top_p=0.7)
        return {next_token(logits, config, generator) for _ in range(300)}

    # At temperature 1 the nucleus of 0.7 holds ids 0 and 1; sharpened by 0.5 (0.867, ...) only id 0.
    assert draws(1.0) == {0, 1}
    assert draws(0.5) == {0}
    # Flattened by a high temperature, every id is drawn.
    generator = torch.Generator().manual_seed(0)
    hot = Config(do_sample=True, temperature=10.0)
    assert {next_token(logits, hot, generator) for _ in range(300)} == {0, 1, 2}


def scripted_bridge(reply: str) -> HFBridge:
    """A bridge over a model whose greedy reply to any prompt is ``reply``, then eos."""
    tokenizer = train_bpe_tokenizer()
    return HFBridge(scripted_llama(tokenizer, reply), tokenizer)


def scripted_prompt(bridge: HFBridge) -> tuple[torch.Tensor, torch.Tensor]:
    # The prompt must not end with one of the reply's tokens, so a bare bos it is.
    ids = torch.tensor([[bridge.bos_token_id]])
    return bridge.embed(ids).detach(), torch.ones_like(ids)


REPLY = "A red circle.\nUser: what"  # eleven distinct tokens, so a scripted model can say it


def test_eos_ends_the_reply() -> None:
    bridge = scripted_bridge(REPLY)
    embeds, mask = scripted_prompt(bridge)
    ids = list(bridge.generate_ids(embeds, mask, Config(max_new_tokens=100)))
    assert ids == bridge.tokenize(REPLY)
    assert "".join(bridge.generate(embeds, mask, Config(max_new_tokens=100))) == REPLY


@pytest.mark.parametrize(
    ("stop", "reply"),
    [
        (("User:",), "A red circle.\n"),  # spans the tokens "U", "s", "er", ":"
        (("\nUser",), "A red circle."),
        (("ed ci",), "A r"),  # starts and ends inside tokens
        (("User:", "d ci"), "A re"),  # the earliest stop string wins
        (("Usex", "what!"), REPLY),  # partial matches are released once they fail
    ],
)
def test_stop_strings_cut_the_reply_and_are_never_emitted(stop: tuple[str, ...], reply: str) -> None:
    bridge = scripted_bridge(REPLY)
    tokens = [bridge.decode([i]) for i in bridge.tokenize(REPLY)]
    assert not any(s in token for s in stop for token in tokens)  # every stop spans tokens
    embeds, mask = scripted_prompt(bridge)
    pieces = list(bridge.generate(embeds, mask, Config(max_new_tokens=100, stop=stop)))
    assert "".join(pieces) == reply
    assert all(pieces)


def test_stop_token_ids_end_the_reply_and_trim_tokens_cut_its_end() -> None:
    bridge = scripted_bridge(REPLY)
    script = bridge.tokenize(REPLY)
    stop = script[5]  # a token id mid-reply
    embeds, mask = scripted_prompt(bridge)

    def reply(max_new_tokens: int = 100, **settings: Any) -> list[int]:
        config = Config(max_new_tokens=max_new_tokens, **settings)
        ids = list(bridge.generate_ids(embeds, mask, config))
        assert "".join(bridge.generate(embeds, mask, config)) == bridge.decode(ids)
        return ids

    assert reply(stop_token_ids=(stop,)) == script[:5]  # like eos: the stop id is not the reply's
    # trim_tokens n: every generated id, the ending one included, less the last n (PandaGPT's [:-2]).
    assert reply(stop_token_ids=(stop,), trim_tokens=2) == script[:4]
    assert reply(stop_token_ids=(stop,), trim_tokens=0) == script[:6]
    assert reply(trim_tokens=2) == script[:-1]  # ended by eos: the eos and the last token go
    assert reply(trim_tokens=2, max_new_tokens=4) == script[:2]  # no end: still two fewer
    assert reply(stop_token_ids=(script[0],), trim_tokens=2) == []


def test_token_id_looks_up_vocabulary_entries_not_text() -> None:
    bridge = scripted_bridge(REPLY)
    vocabulary = bridge.tokenizer.get_vocab()
    assert bridge.token_id("##") == vocabulary["##"] and bridge.token_id("Ġdog") == vocabulary["Ġdog"]
    assert bridge.token_id(" dog") is None and bridge.token_id("no such token") is None


def test_multibyte_text_streams_without_replacement_characters() -> None:
    reply = "Café日語🙂!"  # every byte of é, 日, 語 and 🙂 is its own token here
    bridge = scripted_bridge(reply)
    tokens = [bridge.decode([i]) for i in bridge.tokenize(reply)]
    assert sum("\ufffd" in token for token in tokens) >= 8  # characters really are split
    embeds, mask = scripted_prompt(bridge)
    pieces = list(bridge.generate(embeds, mask, Config(max_new_tokens=50)))
    assert "".join(pieces) == reply
    assert not any("\ufffd" in piece for piece in pieces)
    assert "🙂" in pieces or "🙂!" in pieces  # the emoji arrives whole, as soon as it is complete


def test_streamed_pieces_concatenate_to_the_reply(bridge: HFBridge, make_prompt) -> None:
    embeds, mask = make_prompt(bridge)
    config = Config(max_new_tokens=24, do_sample=True, seed=7)
    pieces = list(bridge.generate(embeds, mask, config))
    assert len(pieces) > 1
    assert "".join(pieces) == bridge.decode(list(bridge.generate_ids(embeds, mask, config)))


def test_closing_the_stream_stops_cleanly(bridge: HFBridge, make_prompt) -> None:
    embeds, mask = make_prompt(bridge)
    calls = 0

    def count(*_: object) -> None:
        nonlocal calls
        calls += 1
        assert torch.is_inference_mode_enabled()

    handle = bridge.module.register_forward_hook(count)
    try:
        stream = bridge.generate(embeds, mask, Config(max_new_tokens=50))
        next(stream)
        assert not torch.is_inference_mode_enabled()  # the mode never leaks to the consumer
        stream.close()
        assert calls <= 3
    finally:
        handle.remove()
    assert len(list(bridge.generate_ids(embeds, mask, Config(max_new_tokens=5)))) == 5


def test_keyboard_interrupt_propagates_and_leaves_the_bridge_usable(
    bridge: HFBridge, make_prompt, interrupt_forward
) -> None:
    embeds, mask = make_prompt(bridge)
    with interrupt_forward(bridge, 3), pytest.raises(KeyboardInterrupt):
        list(bridge.generate(embeds, mask, Config(max_new_tokens=50)))
    assert not torch.is_inference_mode_enabled()
    assert len(list(bridge.generate_ids(embeds, mask, Config(max_new_tokens=5)))) == 5


def test_batch_of_two_is_refused(bridge: HFBridge) -> None:
    embeds = bridge.embed(torch.tensor([[1, 5], [1, 6]]))
    with pytest.raises(ValueError, match="one prompt"):
        list(bridge.generate(embeds, torch.ones(2, 2), Config()))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bfloat16_on_cuda_greedy_generates(tiny_dir) -> None:
    settings = anymodal.LLMSettings(path=str(tiny_dir))
    gpu = HFBridge.load(settings, "cuda", "bfloat16")
    assert gpu.device.type == "cuda" and gpu.dtype == torch.bfloat16
    ids = torch.tensor([[gpu.bos_token_id, *gpu.tokenize("### Human: Hello\n### Assistant:")]], device="cuda")
    embeds, mask = gpu.embed(ids), torch.ones_like(ids)
    config = Config(max_new_tokens=12)
    generated = list(gpu.generate_ids(embeds, mask, config))
    assert list(gpu.generate_ids(embeds, mask, config)) == generated
    assert len(generated) == 12 or gpu.eos_token_id is not None
    assert "".join(gpu.generate(embeds, mask, config)) == gpu.decode(generated)
    sampled = Config(max_new_tokens=12, do_sample=True, top_p=0.9, seed=5)
    assert list(gpu.generate_ids(embeds, mask, sampled)) == list(gpu.generate_ids(embeds, mask, sampled))
    loss, logits = gpu.forward(embeds, mask, ids)
    assert loss is not None and torch.isfinite(loss) and logits.dtype == torch.bfloat16
