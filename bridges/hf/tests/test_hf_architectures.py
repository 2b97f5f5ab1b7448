"""Any AutoModelForCausalLM, not only Llama: other families load, embed, train and decode alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from anymodal_hf.bridge import HFBridge

import anymodal
from anymodal.testing import train_bpe_tokenizer

SMALL = {"num_attention_heads": 4, "max_position_embeddings": 128}
ARCHITECTURES = {
    "gpt2": (
        transformers.GPT2Config,
        {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 128},
        ("c_attn",),
    ),
    "qwen2": (
        transformers.Qwen2Config,
        {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 64,
            "num_key_value_heads": 2,
            **SMALL,
        },
        ("q_proj", "v_proj"),
    ),
    "mistral": (
        transformers.MistralConfig,
        {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 64,
            "num_key_value_heads": 2,
            **SMALL,
        },
        ("q_proj", "k_proj", "v_proj", "o_proj"),
    ),
}


@pytest.fixture(params=sorted(ARCHITECTURES))
def family(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    config_class, sizes, _ = ARCHITECTURES[request.param]
    tokenizer = train_bpe_tokenizer()
    config = config_class(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sizes,
    )
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return request.param, tmp_path


def test_family_decodes_greedily_like_a_cache_free_argmax(family: tuple[str, Path]) -> None:
    name, directory = family
    bridge = HFBridge.load(anymodal.LLMSettings(path=str(directory)), "cpu", "float32")
    assert bridge.hidden_size == 32
    ids = torch.tensor([[bridge.bos_token_id, *bridge.tokenize("What colour is the circle?")]])
    with torch.no_grad():
        embeds = bridge.embed(ids)
    steps = 10
    generated = list(
        bridge.generate_ids(embeds, torch.ones_like(ids), anymodal.GenerationConfig(max_new_tokens=steps))
    )

    expected: list[int] = []
    sequence = embeds
    with torch.no_grad():
        for _ in range(len(generated)):
            _, logits = bridge.forward(sequence, torch.ones(sequence.shape[:2], dtype=torch.long))
            expected.append(int(logits[0, -1].argmax()))
            sequence = torch.cat([sequence, bridge.embed(torch.tensor([expected[-1:]]))], dim=1)
    assert generated == expected, name
    assert len(generated) == steps or generated[-1] == bridge.eos_token_id


def test_family_takes_lora_on_its_own_module_names(family: tuple[str, Path]) -> None:
    name, directory = family
    bridge = HFBridge.load(anymodal.LLMSettings(path=str(directory)), "cpu", "float32")
    targets = ARCHITECTURES[name][2]
    bridge.add_lora(anymodal.LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=targets))
    trainable = {n for n, p in bridge.module.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == set(targets)
