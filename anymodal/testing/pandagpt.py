"""PandaGPT's released files at toy size, in their exact formats: a delta as PandaGPT's
``save_model`` writes it, and a LLaMA-1-shaped LLM (as many key/value heads as query heads),
random or scripted to say given token ids."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

#: PandaGPT's LoRA rank (and alpha).
RANK = 32

#: The scripted LLM's token embeddings: large beside what a toy delta's LoRA adds.
SCRIPT_SCALE = 100.0


def save_pandagpt_delta(
    path: str | os.PathLike[str], *, layers: int = 2, hidden: int = 32, embed_dim: int = 24, seed: int = 0
) -> Path:
    """Every trainable named_parameter of PandaGPT's wrapper, as ``nn.Parameter``s in fp16, in an
    OrderedDict saved with ``torch.save``: LoRA A ``[32, hidden]`` and B ``[hidden, 32]`` on q/k/v/o of
    each layer under PEFT 0.3.0's names, then ``llama_proj`` ``[hidden, embed_dim]``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state: OrderedDict[str, torch.nn.Parameter] = OrderedDict()

    def parameter(*shape: int) -> torch.nn.Parameter:
        return torch.nn.Parameter((0.1 * torch.randn(*shape, generator=generator)).half())

    for layer in range(layers):
        for module in "qkvo":
            prefix = f"llama_model.base_model.model.model.layers.{layer}.self_attn.{module}_proj"
            state[f"{prefix}.lora_A.default.weight"] = parameter(RANK, hidden)
            state[f"{prefix}.lora_B.default.weight"] = parameter(hidden, RANK)
    state["llama_proj.weight"] = parameter(hidden, embed_dim)
    state["llama_proj.bias"] = parameter(hidden)
    torch.save(state, path)
    return Path(path)


def save_llama_1(directory: str | os.PathLike[str], *, layers: int = 2, hidden: int = 32) -> Path:
    """A tiny Llama with LLaMA-1's attention shapes (no grouped key/value heads), so every LoRA B
    of a PandaGPT delta is ``[hidden, r]``, and its tokenizer; the directory from_pretrained reads."""
    from anymodal.testing.tiny import tiny_llama, train_bpe_tokenizer

    path = Path(directory)
    tokenizer = train_bpe_tokenizer()
    llm = tiny_llama(len(tokenizer), hidden_size=hidden, num_layers=layers, num_heads=4, num_kv_heads=4)
    llm.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_scripted_llama_1(
    directory: str | os.PathLike[str], script: Sequence[int], *, layers: int = 2, hidden: int = 64
) -> Path:
    """:func:`save_llama_1`, but the LLM's greedy reply to any prompt is the ids ``script``, then
    EOS, even with a PandaGPT delta's LoRA applied: a model that says exactly what a test needs
    (a ``##`` mid-reply, no end before max_new_tokens, ...), however the tokenizer would spell it.

    The bigram trick of :func:`anymodal.testing.scripted_llama` (attention and MLP outputs zeroed,
    so each position's logits depend on its own token: any token outside the script predicts its
    first id, each script id the next), in LLaMA-1's shapes, with the token embeddings scaled up
    so that what the LoRA adds through o_proj cannot change the argmax. The script's ids must be
    distinct, fewer than ``hidden``, and not the prompt's last token.
    """

    from anymodal.testing.tiny import tiny_llama, train_bpe_tokenizer, write_script

    if len(set(script)) != len(script) or len(script) + 1 > hidden:
        raise ValueError(f"a script needs distinct ids, fewer than {hidden}; got {list(script)}")
    path = Path(directory)
    tokenizer = train_bpe_tokenizer()
    llm = tiny_llama(
        len(tokenizer),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=2 * hidden,
    )
    write_script(llm, script, scale=SCRIPT_SCALE)
    llm.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
