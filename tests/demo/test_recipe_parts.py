"""The demo recipe's own steps at toy size: the LLM's text pre-training and the encoder's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from anymodal.config import load_config
from anymodal.contract.registry import load_registry
from anymodal.contract.specs import Message
from anymodal.demo.captions import CAPTION_WIDTH, layout_caption
from anymodal.demo.encoder import EncoderRecipe, TrunkSchedule, load_modalities, pretrain_encoder
from anymodal.demo.llm import LLMRecipe, conversation_texts, train_demo_llm
from anymodal.demo.recipe import LLM_DATA, TRAINING_DATA, Recipe, _imagebind_config, write_texts
from anymodal.demo.world import ATTRIBUTES, generate_world

PLACEHOLDERS = {"image": "<image>", "audio": "<audio>"}


def test_conversations_become_chatml_text_with_empty_spans() -> None:
    conversation = [Message("user", "<image>\nWhat shape is this?"), Message("assistant", "It is a circle.")]
    assert conversation_texts([conversation], PLACEHOLDERS) == [
        "<|im_start|>user\n<image></image>\nWhat shape is this?<|im_end|>\n"
        "<|im_start|>assistant\nIt is a circle.<|im_end|>\n"
    ]


def test_the_llm_reads_the_training_data_and_more_which_colour_records(tmp_path: Path) -> None:
    generate_world(tmp_path, 6, seed=0, multi=4)
    write_texts(tmp_path, Recipe(small_talk=5, llm_multi=(("which_colour", 9),)))
    conversations = (tmp_path / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
    training = (tmp_path / TRAINING_DATA).read_text(encoding="utf-8").splitlines()
    assert training[: len(conversations)] == conversations and len(training) == len(conversations) + 5
    text = (tmp_path / LLM_DATA).read_text(encoding="utf-8").splitlines()
    assert text[: len(training)] == training
    extra = [json.loads(line) for line in text[len(training) :]]
    assert [record["meta"]["modality"] for record in extra] == ["image+image"] * 9 + ["image+image+image"] * 9
    # drawn as the world's are: the first four of each size are the world's own which_colour records
    world = [json.loads(line) for line in conversations if '"which_colour"' in line]
    assert len(world) == 8 and extra[:4] + extra[9:13] == world


def test_the_llm_learns_the_prompts_as_the_processor_tokenises_them(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    world = tmp_path / "world"
    generate_world(world, n=8, seed=0, modalities=["image", "audio"])
    registry = load_registry()
    overrides = [f"train.data.train={world / 'conversations.jsonl'}", "train.data.eval=null"]
    overrides += [f"model.modalities.{m}.encoder.weights=null" for m in ATTRIBUTES]
    config = load_config("demo", overrides, registry=registry).config
    recipe = LLMRecipe(
        vocab_size=400,
        hidden_size=32,
        num_layers=1,
        intermediate_size=64,
        steps=40,
        batch_size=4,
        warmup_steps=4,
        lr=1e-2,
    )
    losses = train_demo_llm(config, registry, tmp_path / "llm", recipe, log=lambda line: None)
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "llm")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "llm")
    assert model.config.hidden_size == 32 and model.config.vocab_size == len(tokenizer)
    assert tokenizer.chat_template is not None and "im_start" in tokenizer.chat_template


def test_encoder_pretraining_saves_imagebind_keys_and_reports_held_out_accuracy(tmp_path: Path) -> None:
    world, extra, held_out = tmp_path / "world", tmp_path / "extra", tmp_path / "held-out"
    generate_world(world, n=12, seed=0, modalities=["image", "audio"])
    generate_world(extra, n=4, seed=2, modalities=["image"])
    generate_world(held_out, n=4, seed=1, modalities=["image", "audio"])
    registry = load_registry()
    loaded = load_config("demo", ["model.llm.path=builtin:tiny-untrained"], registry=registry)
    quiet = {"log": lambda line: None}
    data = load_modalities([world, extra], loaded.config, registry, ATTRIBUTES, **quiet)
    held = load_modalities([held_out], loaded.config, registry, ATTRIBUTES, **quiet)
    assert set(data) == {"image", "audio"}
    assert tuple(data["image"].inputs.shape) == (16, 3, 64, 64)
    assert tuple(data["audio"].labels.shape) == (12, 2)
    assert tuple(data["image"].captions.shape) == (16, CAPTION_WIDTH) and data["audio"].captions is None
    out = tmp_path / "imagebind.safetensors"
    # The shipped schedules, cut short: the ones for modalities not in the data are skipped.
    recipe = EncoderRecipe(caption_weight=1.0).scaled(0.001)
    assert [t.steps for t in recipe.trunks][:2] == [8, 1] and recipe.caption_weight == 1.0
    logged: list[str] = []
    accuracy = pretrain_encoder(data, held, _imagebind_config(loaded.config), out, recipe, logged.append)
    assert logged[0].startswith("encoder vision step 1/8: loss image ")
    assert logged[-1].startswith("encoder audio step 1/1: loss audio ")
    assert {m: sorted(a) for m, a in accuracy.items()} == {
        "image": sorted([*ATTRIBUTES["image"], "caption_recall_at_1"]),
        "audio": sorted(ATTRIBUTES["audio"]),
    }
    assert 0.0 <= accuracy["image"]["caption_recall_at_1"] <= 1.0
    keys = load_file(str(out))
    assert any(k.startswith("modality_trunks.vision.") for k in keys)
    assert any(k.startswith("modality_trunks.audio.") for k in keys)
    assert not any(k.startswith("modality_trunks.imu.") for k in keys)
    # The saved trunks load as encoder weights through the demo config.
    from anymodal.runtime.model import build_encoder

    settings = loaded.config.model.modalities["image"]
    settings.encoder.weights = str(out)
    encoder = build_encoder(registry.modalities["image"], settings.encoder, registry)
    expected = keys[next(k for k in keys if k.startswith("modality_trunks.vision."))]
    assert any(torch.equal(p, expected) for p in encoder.state_dict().values())
    assert json.dumps(accuracy)


def test_every_modality_needs_a_schedule_and_a_schedule_one_trunk(tmp_path: Path) -> None:
    world = tmp_path / "world"
    generate_world(world, n=4, seed=0, modalities=["image", "audio"])
    registry = load_registry()
    loaded = load_config("demo", ["model.llm.path=builtin:tiny-untrained"], registry=registry)
    data = load_modalities([world], loaded.config, registry, ATTRIBUTES, log=lambda line: None)
    config = _imagebind_config(loaded.config)
    only_image = EncoderRecipe((TrunkSchedule((("image", 1, 2),), steps=1, lr=1e-3),))
    with pytest.raises(ValueError, match="no schedule for audio"):
        pretrain_encoder(data, data, config, tmp_path / "a.safetensors", only_image)
    mixed = EncoderRecipe((TrunkSchedule((("image", 1, 2), ("audio", 1, 2)), steps=1, lr=1e-3),))
    with pytest.raises(ValueError, match="one schedule must train one trunk, not audio, vision"):
        pretrain_encoder(data, data, config, tmp_path / "b.safetensors", mixed)


def test_encoder_pretraining_is_the_same_whatever_torch_was_seeded_with(tmp_path: Path) -> None:
    """ImageBind's IMU head has dropout: it must draw from the recipe's seed, not the caller's."""
    world = tmp_path / "world"
    generate_world(world, n=4, seed=0, modalities=["imu"])
    registry = load_registry()
    loaded = load_config("demo", ["model.llm.path=builtin:tiny-untrained"], registry=registry)
    data = load_modalities([world], loaded.config, registry, ATTRIBUTES, log=lambda line: None)
    config = _imagebind_config(loaded.config)
    recipe = EncoderRecipe((TrunkSchedule((("imu", 1, 4),), steps=3, lr=1e-2),))
    saved = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        out = tmp_path / f"seed{seed}.safetensors"
        pretrain_encoder(data, data, config, out, recipe, log=lambda line: None)
        saved.append(out.read_bytes())
    assert saved[0] == saved[1]


def test_a_layout_caption_says_shape_centre_size_turn_and_star_depth_in_the_central_square() -> None:
    # A 300x200 canvas: the image plugin keeps the central 200-pixel square, from x = 50.
    render = {
        "region": [50.0, 0.0, 200],
        "placement": {"shape": "star", "cx": 150.0, "cy": 50.0, "size": 80.0, "angle": -6.0, "ratio": 0.5},
    }
    assert layout_caption(render, "star") == [0.0, 0.0, 0.0, 1.0, 0.5, 0.25, 0.4, -0.5, 1.0]
    render["placement"] = {
        "shape": "circle",
        "cx": 60.0,
        "cy": 190.0,
        "size": 20.0,
        "angle": 0.0,
        "ratio": 0.45,
    }
    assert layout_caption(render, "circle") == [1.0, 0.0, 0.0, 0.0, 0.05, 0.95, 0.1, 0.0, 0.0]


def test_the_caption_objective_pulls_each_picture_to_its_own_caption(tmp_path: Path) -> None:
    """Trained on 32 pictures with their captions, the trunk and the caption tower learn to match
    them: each picture's own caption becomes the nearest of the 32 for most pictures (chance: 1 in
    32), where a run without the captions' pull has no tower to ask."""
    world = tmp_path / "world"
    generate_world(world, n=32, seed=0, modalities=["image"])
    registry = load_registry()
    loaded = load_config("demo", ["model.llm.path=builtin:tiny-untrained"], registry=registry)
    quiet = {"log": lambda line: None}
    data = load_modalities([world], loaded.config, registry, ATTRIBUTES, **quiet)
    config = _imagebind_config(loaded.config)
    schedule = TrunkSchedule((("image", 1, 32),), steps=80, lr=2e-3, warmup_steps=10)
    out = tmp_path / "imagebind.safetensors"
    captioned = EncoderRecipe((schedule,), caption_weight=1.0)
    trained = pretrain_encoder(data, data, config, out, captioned, **quiet)
    first = pretrain_encoder(data, data, config, out, captioned.scaled(0), **quiet)
    without = pretrain_encoder(
        data, data, config, out, EncoderRecipe((schedule,), caption_weight=0.0).scaled(0), **quiet
    )
    assert trained["image"]["caption_recall_at_1"] >= 0.5 > first["image"]["caption_recall_at_1"]
    assert "caption_recall_at_1" not in without["image"]
