"""Tiny, deterministic models built locally in milliseconds: no downloads, no hub.

The tokenizer and the random ``LlamaForCausalLM`` are those of the built-in ``builtin:tiny-untrained``
LLM (:mod:`anymodal.runtime.tiny_llm`, re-exported here); this module adds a scripted Llama with a
known reply and a toy-width ImageBind in the released checkpoint layout. torch and transformers
are imported inside the functions so that importing :mod:`anymodal.testing` stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.runtime.tiny_llm import (
    BOS_ID,
    BOS_TOKEN,
    CHATML_TEMPLATE,
    DEFAULT_CORPUS,
    EOS_ID,
    EOS_TOKEN,
    PAD_ID,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    UNK_ID,
    UNK_TOKEN,
    save_tiny_llm,
    tiny_llama,
    train_bpe_tokenizer,
)

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

__all__ = [
    "BOS_ID",
    "BOS_TOKEN",
    "CHATML_TEMPLATE",
    "DEFAULT_CORPUS",
    "EOS_ID",
    "EOS_TOKEN",
    "PAD_ID",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "TINY_IMAGEBIND",
    "UNK_ID",
    "UNK_TOKEN",
    "save_scripted_llm",
    "save_tiny_imagebind",
    "save_tiny_llm",
    "scripted_llama",
    "tiny_llama",
    "train_bpe_tokenizer",
    "write_script",
]

#: ImageBind's architecture at toy width, the encoder options
#: ``{"preset": "huge", "config": TINY_IMAGEBIND}`` build every trunk in milliseconds.
TINY_IMAGEBIND: dict[str, Any] = {
    "out_embed_dim": 24,
    **{
        f"{trunk}_{key}": value
        for trunk in ("vision", "text", "audio", "depth", "thermal", "imu")
        for key, value in (("embed_dim", 16), ("num_blocks", 1), ("num_heads", 2))
    },
}


def save_scripted_llm(directory: str | os.PathLike[str], reply: str) -> Path:
    """Write a tokenizer and a :func:`scripted_llama` that always answers ``reply``; return the path."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = train_bpe_tokenizer()
    scripted_llama(tokenizer, reply).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def scripted_llama(
    tokenizer: PreTrainedTokenizerFast,
    reply: str,
    *,
    hidden_size: int = 64,
) -> LlamaForCausalLM:
    """A ``LlamaForCausalLM`` whose greedy reply to any prompt is ``reply`` followed by eos.

    The attention and MLP outputs are zeroed, so each position's logits depend on its own token
    only (a bigram model): every token outside the script predicts the reply's first token, and
    each reply token predicts the next. That needs the reply's tokens to be distinct and fewer
    than ``hidden_size``; a prompt must not end with one of them. Useful to test streaming, stop
    strings and chat output end to end with a real model and a known answer.
    """
    script: Sequence[int] = tokenizer.encode(reply, add_special_tokens=False)
    if len(set(script)) != len(script):
        raise ValueError(
            f"scripted_llama needs a reply whose tokens are distinct, got {script} for {reply!r}"
        )
    if len(script) + 1 > hidden_size:
        raise ValueError(f"reply has {len(script)} tokens; scripted_llama holds at most {hidden_size - 1}")
    model = tiny_llama(len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size)
    write_script(model, script)
    return model


def write_script(model: LlamaForCausalLM, script: Sequence[int], scale: float = 1.0) -> None:
    """Make ``model``'s greedy reply to any prompt ``script`` then EOS, in place: attention and MLP
    outputs zeroed, so each position's logits depend on its own token; embedding slot 0 stands for
    any token outside the script, slot i + 1 for the script's i-th id. ``scale`` multiplies the
    embeddings (a larger one keeps an adapter's additions from changing the argmax). The ids must
    be distinct and fewer than the hidden size."""
    import torch

    llama: Any = model  # transformers' modules are too dynamic for the type checker
    with torch.no_grad():
        for layer in llama.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embedding = llama.get_input_embeddings().weight
        head = llama.get_output_embeddings().weight
        embedding.zero_()
        embedding[:, 0] = scale
        head.zero_()
        successors = [*script[1:], EOS_ID]
        head[script[0], 0] = 10.0
        for slot, (token, successor) in enumerate(zip(script, successors, strict=True), start=1):
            embedding[token] = 0.0
            embedding[token, slot] = scale
            head[successor, slot] = 10.0


def save_tiny_imagebind(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """An ImageBind of :data:`TINY_IMAGEBIND` width with random weights, saved as the released
    ``imagebind_huge.pth`` is: one flat state dict under ImageBind's own key names. Load it with
    the encoder options ``{"preset": "huge", "config": TINY_IMAGEBIND}`` and ``weights: path``."""
    import torch

    from anymodal.encoders.imagebind import ImageBind, ImageBindOptions

    config = ImageBindOptions(config=TINY_IMAGEBIND).image_bind_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ImageBind(config)
    torch.save(model.state_dict(), path)
    return Path(path)
