"""Replies continued from a kept KV cache (HFBridge.generate_cached, anymodal_hf.kv): the same ids
as the whole prompt's, the cache they leave, and copies that share nothing."""

from __future__ import annotations

import pytest
import torch
from anymodal_hf.bridge import HFBridge
from anymodal_hf.generation import decode_loop
from anymodal_hf.kv import HFKVCache, layer_pairs

import anymodal

Config = anymodal.GenerationConfig


def kept(bridge: HFBridge, embeds: torch.Tensor) -> HFKVCache:
    """The cache over ``embeds``' positions (a reply of one id, which never runs)."""
    reply = bridge.generate_cached(embeds, Config(max_new_tokens=1), None)
    list(reply)
    assert isinstance(reply.cache, HFKVCache) and reply.fed_ids == []
    return reply.cache


def test_a_reply_continued_from_any_split_of_its_prompt_is_the_whole_prompts(bridge, make_prompt) -> None:
    embeds, mask = make_prompt(bridge)
    config = Config(max_new_tokens=10)
    expected = list(decode_loop(bridge.module, embeds, mask, config))
    whole = "".join(bridge.generate(embeds, mask, config))
    seq = embeds.shape[1]
    for split in (1, seq // 2, seq - 1):
        past = kept(bridge, embeds[:, :split])
        assert past.length == split
        reply = bridge.generate_cached(embeds[:, split:], config, past)
        assert "".join(reply) == whole
        assert reply.cache is past  # extended in place
        # Every reply id but the last ran: the cache holds the prompt and those.
        assert reply.fed_ids == expected[: len(reply.fed_ids)] and len(reply.fed_ids) == len(expected) - 1
        assert past.length == seq + len(reply.fed_ids)


def test_a_prefix_is_a_copy_that_later_steps_leave_alone(bridge, make_prompt) -> None:
    embeds, _ = make_prompt(bridge)
    cache = kept(bridge, embeds)
    start = cache.prefix(3)
    assert (start.length, cache.length) == (3, embeds.shape[1])
    per_position = cache.nbytes // cache.length
    assert per_position > 0 and start.nbytes == 3 * per_position
    list(bridge.generate_cached(embeds[:, -1:], Config(max_new_tokens=4), cache))  # cache grows
    assert start.length == 3
    # The prefix holds the original's first positions, in tensors of its own.
    for (key, value), (whole_key, whole_value) in zip(
        layer_pairs(start.cache), layer_pairs(cache.cache), strict=True
    ):
        assert torch.equal(key, whole_key[..., :3, :]) and torch.equal(value, whole_value[..., :3, :])
        assert key.untyped_storage().data_ptr() != whole_key.untyped_storage().data_ptr()
    continued = bridge.generate_cached(embeds[:, 3:], Config(max_new_tokens=4), start)
    assert "".join(continued) == "".join(bridge.generate_cached(embeds, Config(max_new_tokens=4), None))
    with pytest.raises(ValueError, match="has no prefix of 99"):
        cache.prefix(99)
    cache.crop(2)
    assert cache.length == 2
    with pytest.raises(ValueError, match="cannot crop a cache of 2 positions to 5"):
        cache.crop(5)


def test_a_stopped_reply_leaves_the_cache_of_what_ran_and_a_foreign_cache_is_refused(bridge, make_prompt):
    embeds, _ = make_prompt(bridge)
    reply = bridge.generate_cached(embeds, Config(max_new_tokens=50), None)
    next(reply)
    next(reply)
    reply.close()
    assert reply.cache is not None and reply.cache.length == embeds.shape[1] + len(reply.fed_ids)
    assert 1 <= len(reply.fed_ids) <= 2

    class Other(anymodal.KVCache):
        length = nbytes = 0

        def crop(self, length: int) -> None: ...

        def prefix(self, length: int) -> Other:
            return self

    with pytest.raises(TypeError, match="continues only its own caches, not a Other"):
        bridge.generate_cached(embeds, Config(), Other())
