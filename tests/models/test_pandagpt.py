"""PandaGPT's released delta, built here in its exact format at toy size: checked, converted, and
giving the logits of applying the delta by hand with PandaGPT's own prompt recipe."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from anymodal_hf.lora import quiet_peft_deprecations
from click.testing import CliRunner
from omegaconf import OmegaConf
from peft import LoraConfig, get_peft_model
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaForCausalLM

from anymodal.cli import cli
from anymodal.config import load_config
from anymodal.config.model_files import check_model_files
from anymodal.contract.errors import ModelLoadError
from anymodal.contract.registry import load_registry
from anymodal.contract.specs import Message
from anymodal.models.pandagpt import model_config, read_delta
from anymodal.runtime.model import AnyModalModel, PreparedInput, scatter_embeddings
from anymodal.runtime.processor import Attachment, Turn
from anymodal.testing import TINY_IMAGEBIND, save_tiny_imagebind
from anymodal.testing.pandagpt import RANK, save_llama_1, save_pandagpt_delta

LAYERS, HIDDEN = 2, 32  # RANK (and alpha) are PandaGPT's own, 32
EMBED = TINY_IMAGEBIND["out_embed_dim"]
PRESETS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pandagpt")
    save_llama_1(root / "vicuna", layers=LAYERS, hidden=HIDDEN)
    save_pandagpt_delta(root / "pytorch_model.pt", layers=LAYERS, hidden=HIDDEN, embed_dim=EMBED)
    image = root / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(image)
    return {
        "llm": root / "vicuna",
        "delta": root / "pytorch_model.pt",
        "imagebind": save_tiny_imagebind(root / "imagebind_huge.pth"),
        "image": image,
        "root": root,
    }


@pytest.fixture(scope="module")
def converted(parts) -> Path:
    output = parts["root"] / "converted"
    args = ["--llm", str(parts["llm"]), "--imagebind", str(parts["imagebind"]), "-o", str(output)]
    result = CliRunner().invoke(cli, ["convert", "pandagpt", str(parts["delta"]), *args])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        f"PandaGPT delta {parts['delta']}: non-standard (2 layers, hidden 32), LoRA r=32 on q/k/v/o, "
        "projection 24 -> 32, 17,184 parameters, float16"
    )
    return output


def test_the_delta_is_read_with_peft_and_projector_names(parts):
    delta = read_delta(parts["delta"])
    assert (delta.layers, delta.hidden, delta.rank, delta.embed_dim, delta.dtype) == (
        2,
        32,
        32,
        24,
        "float16",
    )
    assert sorted(delta.projection) == ["proj.bias", "proj.weight"]
    assert len(delta.lora) == LAYERS * 4 * 2 and delta.ignored == []
    assert "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight" in delta.lora
    # 7B's real counts (spec 3.6) follow from the same arithmetic: 32 layers, hidden 4096.
    assert 32 * 4 * (32 * 4096 + 4096 * 32) + 4096 * 1024 + 4096 == 37_752_832


def test_conversion_writes_anymodal_files(parts, converted):
    names = sorted(str(p.relative_to(converted)) for p in converted.rglob("*") if p.is_file())
    modalities = ["audio", "depth", "image", "imu", "thermal", "video"]
    assert names == sorted(
        ["anymodal.yaml", "adapter/adapter_config.json", "adapter/adapter_model.safetensors"]
        + [f"projectors/{m}.safetensors" for m in modalities]
    )
    delta = torch.load(parts["delta"], weights_only=True)
    projector = load_file(converted / "projectors" / "thermal.safetensors")
    assert torch.equal(projector["proj.weight"], delta["llama_proj.weight"])
    adapter = load_file(converted / "adapter" / "adapter_model.safetensors")
    assert torch.equal(
        adapter["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"],
        delta["llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"],
    )
    settings = json.loads((converted / "adapter" / "adapter_config.json").read_text())
    assert (settings["r"], settings["lora_alpha"], settings["lora_dropout"]) == (32, 32, 0.1)
    assert settings["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    config = yaml.safe_load((converted / "anymodal.yaml").read_text())
    assert (config["model"]["template"], config["model"]["fusion"]) == ("pandagpt", "sum")
    assert config["model"]["modalities"]["audio"]["encoder"]["options"]["postprocess"] == "normalize"
    assert "postprocess" not in config["model"]["modalities"]["thermal"]["encoder"]["options"]  # x10 kept


@pytest.fixture(scope="module")
def tiny_config(converted) -> Path:
    """The converted model's config, with ImageBind at the width of the checkpoint the test wrote."""
    config = yaml.safe_load((converted / "anymodal.yaml").read_text())
    for block in config["model"]["modalities"].values():
        block["encoder"]["options"]["config"] = TINY_IMAGEBIND
    config["model"].update(device="cpu", dtype="float32")
    (converted / "tiny.yaml").write_text(yaml.safe_dump(config))
    return converted / "tiny.yaml"


QUESTION = "What is in this picture?"


def runtime_logits(config: Path, image: Path) -> tuple[torch.Tensor, AnyModalModel, PreparedInput]:
    """The logits anymodal computes for PandaGPT's prompt about ``image``, with the model and input."""
    registry = load_registry()
    model = AnyModalModel.from_config(load_config(config, registry=registry).config.model, registry)
    prepared = model.prepare("image", image)
    turn = Turn(Message("user", QUESTION), (Attachment("image", 1),))
    prompt = model.prompt_processor(registry).process([turn])
    with torch.no_grad():
        (projected,) = model.encode([prepared])
        embeds = scatter_embeddings(
            model.bridge.embed(torch.tensor([prompt.input_ids])), [prompt.slots], [[projected]]
        )
        _, logits = model.bridge.forward(embeds, torch.ones(embeds.shape[:2], dtype=torch.long))
    return logits, model, prepared


def test_logits_equal_the_delta_applied_by_hand(parts, tiny_config):
    ours, model, prepared = runtime_logits(tiny_config, parts["image"])
    question = QUESTION
    with torch.no_grad():
        # By hand: W + (alpha / r) B A in every q/k/v/o, and PandaGPT's prepare_generation_embedding.
        delta = {key: value.float() for key, value in torch.load(parts["delta"], weights_only=True).items()}
        llm = LlamaForCausalLM.from_pretrained(parts["llm"]).eval()
        for index, layer in enumerate(llm.model.layers):
            for module in "qkvo":
                prefix = f"llama_model.base_model.model.model.layers.{index}.self_attn.{module}_proj"
                linear = getattr(layer.self_attn, f"{module}_proj")
                update = delta[f"{prefix}.lora_B.default.weight"] @ delta[f"{prefix}.lora_A.default.weight"]
                linear.weight += (32 / 32) * update
        tokenizer = AutoTokenizer.from_pretrained(parts["llm"])
        image_vector = model.encoders["image"](prepared.tensor.unsqueeze(0)).pooled
        image_token = image_vector @ delta["llama_proj.weight"].T + delta["llama_proj.bias"]
        embed = llm.get_input_embeddings()

        def text(piece: str) -> torch.Tensor:
            return embed(torch.tensor([tokenizer.encode(piece, add_special_tokens=False)]))

        by_hand = torch.cat(
            [
                embed(torch.tensor([[1]])),  # BOS, as an embedding
                text("### Human: <Img>"),
                image_token.unsqueeze(1),
                text("</Img> " + question + "\n### Assistant:"),
            ],
            dim=1,
        )
        theirs = llm(inputs_embeds=by_hand).logits
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def float16_config(converted) -> Path:
    """The converted config as it is (float16, PandaGPT's precision) but on CPU, at toy width."""
    config = yaml.safe_load((converted / "anymodal.yaml").read_text())
    assert config["model"]["dtype"] == "float16"
    for block in config["model"]["modalities"].values():
        block["encoder"]["options"]["config"] = TINY_IMAGEBIND
    config["model"]["device"] = "cpu"
    (converted / "float16.yaml").write_text(yaml.safe_dump(config))
    return converted / "float16.yaml"


def test_float16_keeps_the_lora_in_float16_and_gives_pandagpts_logits(parts, float16_config):
    ours, model, prepared = runtime_logits(float16_config, parts["image"])
    lora = {n: p.dtype for n, p in model.bridge.module.named_parameters() if "lora_" in n}
    assert len(lora) == LAYERS * 4 * 2 and set(lora.values()) == {torch.float16}  # not upcast
    assert model.bridge.dtype == torch.float16 and ours.dtype == torch.float16
    with torch.no_grad():
        # PandaGPT: get_peft_model, load_state_dict(delta, strict=False), then .half() on it all.
        llm = LlamaForCausalLM.from_pretrained(parts["llm"])
        config = LoraConfig(
            r=RANK, lora_alpha=32, lora_dropout=0.1, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
        )
        with quiet_peft_deprecations():
            peft_model = get_peft_model(llm, config)
        delta = torch.load(parts["delta"], weights_only=True)
        lora_state = {
            k.removeprefix("llama_model."): v for k, v in delta.items() if k.startswith("llama_model.")
        }
        assert peft_model.load_state_dict(lora_state, strict=False).unexpected_keys == []
        # Its modeling_llama.py builds RoPE's cos/sin cache in float32 and .half() rounds it; today's
        # Llama computes cos/sin from inv_freq each step, which must stay float32 for the same values.
        rotary = peft_model.base_model.model.model.rotary_emb
        inv_freq = rotary.inv_freq.clone()
        peft_model.eval().half()
        rotary.inv_freq = inv_freq
        projection = torch.nn.Linear(EMBED, HIDDEN)
        projection.load_state_dict({"weight": delta["llama_proj.weight"], "bias": delta["llama_proj.bias"]})
        projection.half()
        tokenizer = AutoTokenizer.from_pretrained(parts["llm"])
        embed = peft_model.get_input_embeddings()
        image = model.encoders["image"](prepared.tensor.unsqueeze(0).half()).pooled

        def text(piece: str) -> torch.Tensor:
            return embed(torch.tensor([tokenizer.encode(piece, add_special_tokens=False)]))

        by_hand = torch.cat(
            [
                embed(torch.tensor([[1]])),
                text("### Human: <Img>"),
                projection(image).unsqueeze(1),
                text("</Img> " + QUESTION + "\n### Assistant:"),
            ],
            dim=1,
        )
        theirs = peft_model(inputs_embeds=by_hand).logits
    assert torch.equal(ours, theirs)  # bit for bit, LoRA computed in float16 as PandaGPT's


def save(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "PandaGPT delta not found"),
        ("not torch", "cannot read PandaGPT delta .*: not a torch checkpoint"),
        ("no projection", "has no llama_proj.weight: not a PandaGPT delta"),
        ("no lora", "holds no LoRA tensors"),
        ("layer missing", "lacks LoRA tensors for 2 layers, e.g. layer 1 k_proj lora_A"),
        ("wrong shape", "LoRA tensors do not fit hidden size 32"),
    ],
)
def test_a_bad_delta_is_one_error_naming_the_file(tmp_path: Path, case: str, message: str):
    path = tmp_path / "pytorch_model.pt"
    state = torch.load(save_pandagpt_delta(tmp_path / "good.pt"), weights_only=True)
    if case == "not torch":
        path.write_text("not a checkpoint")
    elif case == "no projection":
        del state["llama_proj.weight"]
    elif case == "no lora":
        state = OrderedDict((k, v) for k, v in state.items() if k.startswith("llama_proj"))
    elif case == "layer missing":
        del state["llama_model.base_model.model.model.layers.1.self_attn.k_proj.lora_A.default.weight"]
    elif case == "wrong shape":
        state["llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"] = (
            torch.nn.Parameter(torch.zeros(RANK, 16))
        )
    if case not in ("missing", "not torch"):
        save(state, path)
    with pytest.raises(ModelLoadError, match=message) as caught:
        read_delta(path)
    assert str(path) in str(caught.value)


def test_conversion_leaves_an_existing_directory_alone(parts, tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    args = ["--llm", str(parts["llm"]), "--imagebind", str(parts["imagebind"]), "-o", str(tmp_path)]
    result = CliRunner().invoke(cli, ["convert", "pandagpt", str(parts["delta"]), *args])
    assert result.exit_code == 2 and "already exists and is not an empty directory" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_export_merges_the_lora_into_a_plain_llm_with_the_same_logits(parts, tiny_config, tmp_path: Path):
    output = tmp_path / "exported"
    result = CliRunner().invoke(cli, ["export", str(tiny_config), "-o", str(output), "--copy-encoders"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"exported {tiny_config} to {output}"
    files = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    projectors = [
        f"projectors/{m}.safetensors" for m in ("audio", "depth", "image", "imu", "thermal", "video")
    ]
    assert [f for f in files if not f.startswith("llm/")] == [
        "anymodal.yaml",
        "encoders/imagebind_huge.pth",
        *projectors,
    ]
    config = yaml.safe_load((output / "anymodal.yaml").read_text())
    assert config["model"]["llm"]["path"] == "./llm" and config["model"]["llm"]["adapter"] is None
    assert config["model"]["modalities"]["audio"]["encoder"]["weights"] == "./encoders/imagebind_huge.pth"
    merged = LlamaForCausalLM.from_pretrained(output / "llm")  # plain transformers, no PEFT
    assert not any("lora" in key for key in merged.state_dict())
    before, _, _ = runtime_logits(tiny_config, parts["image"])
    after, _, _ = runtime_logits(output / "anymodal.yaml", parts["image"])
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    again = CliRunner().invoke(cli, ["export", str(tiny_config), "-o", str(output)])
    assert again.exit_code == 2 and "already exists and is not an empty directory" in again.stderr


@pytest.mark.parametrize("size", ["7b", "13b"])
def test_the_presets_are_the_converted_config_under_the_weights_directory(size: str):
    raw = OmegaConf.to_container(OmegaConf.load(PRESETS / f"pandagpt-{size}.yaml"), resolve=False)
    expected = model_config(
        f"${{weights:vicuna-{size}-v0}}", "${weights:imagebind_huge.pth}", f"${{weights:pandagpt-{size}}}"
    )
    assert isinstance(raw, dict) and raw["model"].pop("weights_help")
    assert raw == expected


def test_a_preset_without_its_files_names_each_and_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path))
    weights = tmp_path / "weights"
    result = CliRunner().invoke(cli, ["chat", "--model", "pandagpt-7b", "Hello"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"error: the model is missing 9 files: {weights / 'vicuna-7b-v0'} (model.llm.path); "
        f"{weights / 'pandagpt-7b' / 'adapter'} (model.llm.adapter); {weights / 'imagebind_huge.pth'} "
        "(model.modalities.image.encoder.weights, model.modalities.video.encoder.weights, "
    )
    assert line.endswith(
        f"(hint: convert PandaGPT's delta into {weights / 'pandagpt-7b'} with `anymodal convert pandagpt "
        f"pandagpt_7b_max_len_1024/pytorch_model.pt --llm {weights / 'vicuna-7b-v0'} --imagebind "
        f"{weights / 'imagebind_huge.pth'} -o {weights / 'pandagpt-7b'}`, with Vicuna v0 7B and "
        "imagebind_huge.pth at those paths; docs/pandagpt.md says where each file comes from)"
    )


def test_a_preset_finds_its_files_once_they_are_in_place(parts, tmp_path, monkeypatch):
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "vicuna-7b-v0").symlink_to(parts["llm"])
    (weights / "imagebind_huge.pth").symlink_to(parts["imagebind"])
    args = [
        "--llm",
        str(parts["llm"]),
        "--imagebind",
        str(parts["imagebind"]),
        "-o",
        str(weights / "pandagpt-7b"),
    ]
    assert CliRunner().invoke(cli, ["convert", "pandagpt", str(parts["delta"]), *args]).exit_code == 0
    config = load_config("pandagpt-7b", registry=load_registry()).config.model
    check_model_files(config)
    assert config.llm.adapter == str(weights / "pandagpt-7b" / "adapter")
    assert config.modalities["thermal"].projector.weights == str(
        weights / "pandagpt-7b" / "projectors" / "thermal.safetensors"
    )


def test_image_and_video_share_one_vision_trunk(tiny_config):
    registry = load_registry()
    model = AnyModalModel.from_config(load_config(tiny_config, registry=registry).config.model, registry)
    encoders = model.encoders
    assert encoders["image"] is encoders["video"]  # the same trunk, weights and post-processing
    assert len({id(encoders[m]) for m in ("image", "audio", "thermal", "depth", "imu")}) == 5
    apart = load_config(
        tiny_config, ["model.modalities.video.encoder.options.postprocess=false"], registry=registry
    )
    separate = AnyModalModel.from_config(apart.config.model, registry)
    assert separate.encoders["image"] is not separate.encoders["video"]


def test_doctor_counts_each_part_of_a_model(parts, tiny_config):
    result = CliRunner().invoke(cli, ["doctor", str(tiny_config)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("anymodal 0.1.0, Python ")
    assert lines[1].startswith(f"torch {torch.__version__}")
    assert any(line.startswith("libraries: torch ") and "decord " in line for line in lines)
    registry = load_registry()
    model = AnyModalModel.from_config(load_config(tiny_config, registry=registry).config.model, registry)
    llm = LlamaForCausalLM.from_pretrained(parts["llm"]).num_parameters()
    vision = sum(p.numel() for p in model.encoders["image"].parameters())
    start = lines.index(f"model {tiny_config}: every file is there")
    assert lines[start + 1] == "untrained (no weights file; answers about them are noise): none"
    assert lines[start + 2] == "weights in float32 on cpu:"
    parts_said = dict(line.strip().split(": ", 1) for line in lines[start + 3 :])

    def size(count: int) -> str:
        return f"{count / 1e6:,.1f} M parameters, {count * 4 / 1024**3:.2f} GiB"

    adapter = LAYERS * 4 * 2 * RANK * HIDDEN
    assert parts_said[f"LLM {parts['llm']}"] == size(llm)
    assert parts_said[f"adapter {tiny_config.parent / 'adapter'}"] == size(adapter)
    assert parts_said["image encoder (imagebind)"] == size(vision)
    assert parts_said["video encoder (imagebind)"] == f"{size(0)}  (the image encoder, shared)"
    assert parts_said["thermal projector (linear)"] == size(HIDDEN * EMBED + HIDDEN)
    encoders = sum(
        sum(p.numel() for p in e.parameters()) for e in {id(e): e for e in model.encoders.values()}.values()
    )
    assert parts_said["total"] == size(llm + adapter + encoders + 6 * (HIDDEN * EMBED + HIDDEN))


def test_a_delta_in_torchs_legacy_format_reads_the_same(tmp_path: Path, parts):
    state = torch.load(parts["delta"], weights_only=True)
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)  # cannot be memory-mapped
    delta, reference = read_delta(legacy), read_delta(parts["delta"])
    assert delta.lora.keys() == reference.lora.keys()
    assert all(torch.equal(delta.lora[k], reference.lora[k]) for k in delta.lora)
