"""The demo recipe's own steps at toy size: the LLM's text pre-training and the encoder's."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from anymodal.config import load_config
from anymodal.demo.encoder import EncoderRecipe, load_modalities, pretrain_encoder
from anymodal.demo.llm import LLMRecipe, conversation_texts, train_demo_llm
from anymodal.demo.recipe import _imagebind_config
from anymodal.demo.world import ATTRIBUTES, generate_world
from anymodal.plugins import load_registry

PLACEHOLDERS = {"image": "<image>", "audio": "<audio>"}


def test_conversations_become_chatml_text_with_empty_spans() -> None:
    record = {
        "conversations": [
            {"from": "human", "value": "<image>\nWhat shape is this?"},
            {"from": "gpt", "value": "It is a circle."},
        ]
    }
    assert conversation_texts([record], PLACEHOLDERS) == [
        "<|im_start|>user\n<image></image>\nWhat shape is this?<|im_end|>\n"
        "<|im_start|>assistant\nIt is a circle.<|im_end|>\n"
    ]


def test_the_llm_learns_the_text_and_saves_a_loadable_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = [
        f"<|im_start|>user\nWhat colour?<|im_end|>\n<|im_start|>assistant\nIt is {c}.<|im_end|>\n"
        for c in ("red", "blue")
    ] * 8
    recipe = LLMRecipe(
        vocab_size=300,
        hidden_size=32,
        num_layers=1,
        intermediate_size=64,
        steps=40,
        batch_size=4,
        warmup_steps=4,
    )
    losses = train_demo_llm(texts, tmp_path / "llm", recipe, log=lambda line: None)
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "llm")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "llm")
    assert model.config.hidden_size == 32 and model.config.vocab_size == len(tokenizer)
    assert tokenizer.chat_template is not None and "im_start" in tokenizer.chat_template


def test_encoder_pretraining_saves_imagebind_keys_and_reports_held_out_accuracy(tmp_path: Path) -> None:
    world = tmp_path / "world"
    generate_world(world, n=12, seed=0, modalities=["image", "audio"])
    registry = load_registry()
    loaded = load_config("demo", ["model.llm.path=builtin:tiny-untrained"], registry=registry)
    data = load_modalities(world, loaded.config, registry, ATTRIBUTES, log=lambda line: None)
    assert set(data) == {"image", "audio"}
    assert tuple(data["image"].inputs.shape) == (12, 3, 64, 64)
    assert tuple(data["audio"].labels.shape) == (12, 2)
    out = tmp_path / "imagebind.safetensors"
    recipe = EncoderRecipe(steps=6, batch_size=4, warmup_steps=2, held_out=0.25)
    accuracy = pretrain_encoder(data, _imagebind_config(loaded.config), out, recipe, log=lambda line: None)
    assert {m: sorted(a) for m, a in accuracy.items()} == {
        "image": sorted(ATTRIBUTES["image"]),
        "audio": sorted(ATTRIBUTES["audio"]),
    }
    keys = load_file(str(out))
    assert any(k.startswith("modality_trunks.vision.") for k in keys)
    assert any(k.startswith("modality_trunks.audio.") for k in keys)
    assert not any(k.startswith("modality_trunks.imu.") for k in keys)
    # The saved trunks load as encoder weights through the demo config.
    from anymodal.runtime import build_encoder

    settings = loaded.config.model.modalities["image"]
    settings.encoder.weights = str(out)
    encoder = build_encoder(registry.modalities["image"], settings.encoder, registry)
    expected = keys[next(k for k in keys if k.startswith("modality_trunks.vision."))]
    assert any(torch.equal(p, expected) for p in encoder.state_dict().values())
    assert json.dumps(accuracy)
