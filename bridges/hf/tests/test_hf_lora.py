"""LoRA through PEFT: exact trainable parameters, adapter save and reload, bad targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from anymodal_hf.bridge import HFBridge

import anymodal

# The tiny Llama: hidden 32, 4 heads of 8, 2 key/value heads, 2 layers.
HIDDEN, KV_DIM, LAYERS = 32, 2 * 8, 2
SHAPES = {
    "q_proj": (HIDDEN, HIDDEN),
    "k_proj": (HIDDEN, KV_DIM),
    "v_proj": (HIDDEN, KV_DIM),
    "o_proj": (HIDDEN, HIDDEN),
}


def lora_params(bridge: HFBridge) -> dict[str, torch.Tensor]:
    return {name: p for name, p in bridge.module.named_parameters() if "lora_" in name}


def test_trainable_parameters_are_exactly_the_lora_matrices(bridge: HFBridge) -> None:
    settings = anymodal.LoraSettings(
        r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "k_proj", "v_proj", "o_proj")
    )
    bridge.add_lora(settings)
    # Each wrapped [in -> out] layer gains A [r, in] and B [out, r].
    expected = LAYERS * sum(settings.r * (fan_in + fan_out) for fan_in, fan_out in SHAPES.values())
    assert expected == 1792
    trainable = {name: p for name, p in bridge.module.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in trainable.values()) == expected
    assert trainable.keys() == lora_params(bridge).keys()
    assert len(trainable) == 2 * 4 * LAYERS


def test_only_named_targets_are_wrapped(bridge: HFBridge) -> None:
    bridge.add_lora(anymodal.LoraSettings(r=2, target_modules=("v_proj",)))
    assert sum(p.numel() for p in lora_params(bridge).values()) == LAYERS * 2 * (HIDDEN + KV_DIM)


def test_unknown_target_module_lists_the_linear_layers(bridge: HFBridge) -> None:
    with pytest.raises(anymodal.UsageError) as error:
        bridge.add_lora(anymodal.LoraSettings(target_modules=("q_proj", "query_key_value")))
    text = str(error.value)
    assert "'query_key_value'" in text and "'q_proj'" not in text
    for name in ("down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj", "up_proj", "v_proj"):
        assert name in text


def perturb_lora(bridge: HFBridge) -> None:
    """LoRA's B starts at zero, which would make any reload look right; give it weights."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in lora_params(bridge).values():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


def test_saved_adapter_reloads_to_identical_logits(
    bridge: HFBridge, tiny_dir: Path, tmp_path: Path, make_prompt
) -> None:
    embeds, mask = make_prompt(bridge)
    base_logits = bridge.forward(embeds, mask)[1]
    bridge.add_lora(anymodal.LoraSettings(r=4, alpha=8, dropout=0.1))
    perturb_lora(bridge)
    bridge.module.eval()
    logits = bridge.forward(embeds, mask)[1]
    assert not torch.allclose(logits, base_logits)

    bridge.save(tmp_path / "adapter")
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    assert "model.safetensors" not in files  # the base model is not copied

    settings = anymodal.LLMSettings(path=str(tiny_dir), adapter=str(tmp_path / "adapter"))
    reloaded = HFBridge.load(settings, "cpu", "float32")
    torch.testing.assert_close(reloaded.forward(embeds, mask)[1], logits, rtol=0, atol=0)
    assert not any(p.requires_grad for p in reloaded.module.parameters())
    pieces = list(reloaded.generate(embeds, mask, anymodal.GenerationConfig(max_new_tokens=4)))
    assert "".join(pieces) == reloaded.decode(
        list(reloaded.generate_ids(embeds, mask, anymodal.GenerationConfig(max_new_tokens=4)))
    )

    # Resuming stage 2: add_lora on a loaded adapter trains that adapter, not a second one.
    reloaded.add_lora(anymodal.LoraSettings(r=4, alpha=8, dropout=0.1))
    assert {n for n, p in reloaded.module.named_parameters() if p.requires_grad} == set(lora_params(reloaded))
    with pytest.raises(anymodal.UsageError, match="r=4"):
        reloaded.add_lora(anymodal.LoraSettings(r=8))


def test_an_adapter_loads_in_the_models_dtype_and_trains_in_float32(
    bridge: HFBridge, tiny_dir: Path, tmp_path: Path
) -> None:
    bridge.add_lora(anymodal.LoraSettings(r=4, alpha=8, dropout=0.1))
    perturb_lora(bridge)
    bridge.save(tmp_path / "adapter")
    settings = anymodal.LLMSettings(path=str(tiny_dir), adapter=str(tmp_path / "adapter"))
    half = HFBridge.load(settings, "cpu", "float16")
    # Not PEFT's default upcast to float32: a float16 model runs its LoRA in float16 too.
    assert {p.dtype for p in lora_params(half).values()} == {torch.float16}
    saved = lora_params(bridge)
    assert all(torch.equal(p, saved[n].half()) for n, p in lora_params(half).items())
    half.add_lora(anymodal.LoraSettings(r=4, alpha=8, dropout=0.1))  # training it further
    assert {p.dtype for p in lora_params(half).values()} == {torch.float32}
    assert all(p.requires_grad for p in lora_params(half).values())
