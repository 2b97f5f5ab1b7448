"""ImageBind: official keys and shapes, parity with an independent reference, checkpoints, bf16.

The reference forward below is written from the spec (reference-models.md §1) with
``nn.MultiheadAttention`` in sequence-first layout and reads weights by their official keys, so it
shares no code with ``anymodal.encoders.imagebind``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from anymodal import ModelLoadError
from anymodal.encoders.imagebind import (
    IMAGEBIND_HUGE,
    TRUNKS,
    ImageBind,
    ImageBindConfig,
    load_imagebind,
    load_imagebind_weights,
)

KEYS_TSV = Path(__file__).parent / "data" / "imagebind-huge-state-dict-keys.tsv"

# Small dims with every structural feature of the huge model (bias_kv, pre-LN, overlapping audio
# patches, IMU windows, causal text). vocab 64 makes 63 the EOT id.
SMALL = ImageBindConfig(
    kernel_size=(2, 8, 8),
    image_size=32,
    out_embed_dim=24,
    vision_embed_dim=32,
    vision_num_blocks=2,
    vision_num_heads=4,
    text_embed_dim=32,
    text_num_blocks=2,
    text_num_heads=4,
    text_vocab_size=64,
    text_context_length=12,
    audio_embed_dim=16,
    audio_num_blocks=2,
    audio_num_heads=2,
    audio_num_mel_bins=36,
    audio_target_len=46,
    depth_embed_dim=16,
    depth_kernel_size=8,
    depth_num_blocks=2,
    depth_num_heads=2,
    thermal_embed_dim=24,
    thermal_kernel_size=8,
    thermal_num_blocks=2,
    thermal_num_heads=3,
    imu_embed_dim=16,
    imu_kernel_size=8,
    imu_num_blocks=2,
    imu_num_heads=2,
    imu_length=80,
)
EOT = SMALL.text_vocab_size - 1


def randomized(model: ImageBind, seed: int = 0) -> ImageBind:
    """Every parameter random (LayerNorm weights near 1) so no term of the forward can hide."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("log_logit_scale"):
                param.fill_(6.0)  # exp(6) = 403 exercises the clamp at 100
            elif name.endswith("weight") and param.ndim == 1:
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.2 * noise)
    return model.eval()


@pytest.fixture(scope="module")
def small_model() -> ImageBind:
    torch.manual_seed(0)
    return randomized(ImageBind(SMALL))


def text_ids(batch: int, lengths: list[int], generator: torch.Generator) -> torch.Tensor:
    """``[batch, context]``: SOT, random tokens, EOT at ``lengths[b]``, zero padding."""
    ids = torch.zeros(batch, SMALL.text_context_length, dtype=torch.long)
    for row, eot in enumerate(lengths):
        ids[row, 0] = EOT - 1
        ids[row, 1:eot] = torch.randint(1, EOT - 1, (eot - 1,), generator=generator)
        ids[row, eot] = EOT
    return ids


def small_inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "vision": torch.randn(2, 3, 32, 32, generator=g),
        "text": text_ids(2, [5, 11], g),
        "audio": torch.randn(2, 1, 36, 46, generator=g),
        "depth": torch.randn(2, 1, 32, 32, generator=g),
        "thermal": torch.randn(2, 1, 32, 32, generator=g),
        "imu": torch.randn(2, 6, 80, generator=g),
    }


# --- the independent reference -----------------------------------------------------------------


def reference_tokens(state: dict[str, torch.Tensor], cfg: ImageBindConfig, m: str, x: torch.Tensor):
    """Preprocess and trunk, the spec's way: returns ``[batch, tokens, dim]``."""
    pre = f"modality_preprocessors.{m}."
    if m == "text":
        tokens = state[pre + "token_embedding.weight"][x] + state[pre + "pos_embed"]
    else:
        if m == "vision":
            video = x.unsqueeze(2) if x.ndim == 4 else x
            if video.shape[2] == 1:
                video = torch.cat([video, video], dim=2)
            w = state[pre + "rgbt_stem.proj.1.weight"]
            patches = F.conv3d(video, w, stride=cfg.kernel_size).flatten(2).transpose(1, 2)
        elif m == "imu":
            b, c, n = x.shape
            k = cfg.imu_kernel_size
            windows = x.reshape(b, c, n // k, k).permute(0, 2, 1, 3).reshape(b, n // k, c * k)
            patches = windows @ state[pre + "imu_stem.proj.weight"].T
            patches = F.layer_norm(
                patches,
                patches.shape[-1:],
                state[pre + "imu_stem.norm_layer.weight"],
                state[pre + "imu_stem.norm_layer.bias"],
                1e-5,
            )
        else:
            stem = pre + ("depth_stem." if m == "depth" else "rgbt_stem.")
            kernel = cfg.audio_kernel_size if m == "audio" else getattr(cfg, f"{m}_kernel_size")
            stride = cfg.audio_stride if m == "audio" else kernel
            patches = F.conv2d(x, state[stem + "proj.weight"], stride=stride).flatten(2).transpose(1, 2)
            patches = F.layer_norm(
                patches,
                patches.shape[-1:],
                state[stem + "norm_layer.weight"],
                state[stem + "norm_layer.bias"],
            )
        cls = state[pre + "cls_token"].expand(x.shape[0], -1, -1)
        pos = state[pre + ("pos_embed" if m == "imu" else "pos_embedding_helper.pos_embed")]
        if pos.shape[1] != patches.shape[1] + 1:  # the official resize: bicubic with a scale factor
            side = math.isqrt(pos.shape[1] - 1)
            grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
            scale = math.sqrt(patches.shape[1] / (pos.shape[1] - 1))
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic")
            pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, patches.shape[1], -1)], dim=1)
        tokens = torch.cat([cls, patches], dim=1) + pos
    trunk = f"modality_trunks.{m}."
    dim, heads = tokens.shape[-1], getattr(cfg, f"{m}_num_heads")
    if m == "vision":
        tokens = F.layer_norm(
            tokens,
            (dim,),
            state[trunk + "pre_transformer_layer.0.weight"],
            state[trunk + "pre_transformer_layer.0.bias"],
            1e-6,
        )
    mask = state[pre + "mask"] if m == "text" else None
    x_seq = tokens.transpose(0, 1)  # (L, B, D), as the official trunk runs
    for i in range(getattr(cfg, f"{m}_num_blocks")):
        block = f"{trunk}blocks.{i}."
        attention = nn.MultiheadAttention(dim, heads, add_bias_kv=m not in ("vision", "text"))
        own = {k[len(block + "attn.") :]: v for k, v in state.items() if k.startswith(block + "attn.")}
        attention.load_state_dict(own, strict=True)
        attention.eval()

        def ln(t: torch.Tensor, name: str, block: str = block) -> torch.Tensor:
            return F.layer_norm(
                t, (dim,), state[block + name + ".weight"], state[block + name + ".bias"], 1e-6
            )

        h = ln(x_seq, "norm_1")
        x_seq = x_seq + attention(h, h, h, need_weights=False, attn_mask=mask)[0]
        h = F.linear(ln(x_seq, "norm_2"), state[block + "mlp.fc1.weight"], state[block + "mlp.fc1.bias"])
        x_seq = x_seq + F.linear(F.gelu(h), state[block + "mlp.fc2.weight"], state[block + "mlp.fc2.bias"])
    return x_seq.transpose(0, 1)


def reference_pooled(state, cfg, m, x, tokens):
    head = f"modality_heads.{m}."
    if m == "text":
        chosen = tokens[torch.arange(x.shape[0]), x.argmax(dim=-1)]
        chosen = F.layer_norm(
            chosen, chosen.shape[-1:], state[head + "proj.0.weight"], state[head + "proj.0.bias"], 1e-6
        )
        return chosen @ state[head + "proj.1.weight"].T
    normed = F.layer_norm(tokens, tokens.shape[-1:], state[head + "0.weight"], state[head + "0.bias"], 1e-6)
    return normed[:, 0] @ state[head + ("3.weight" if m == "imu" else "2.weight")].T


def reference_forward(state, cfg, m, x):
    """Embedding ``[batch, out_dim]`` with the official multi-clip rule (mean after postprocessing)."""
    clips = x.ndim >= 5
    if clips:
        b, s = x.shape[:2]
        x = x.reshape(b * s, *x.shape[2:])
    tokens = reference_tokens(state, cfg, m, x)
    out = F.normalize(reference_pooled(state, cfg, m, x, tokens), dim=-1)
    scale_key = f"modality_postprocessors.{m}.1.log_logit_scale"
    if scale_key in state:
        out = out * state[scale_key].exp().clamp(max=100)
    return out.reshape(b, s, -1).mean(dim=1) if clips else out


# --- official geometry -----------------------------------------------------------------------


def test_default_config_is_the_official_constructor_defaults():
    official = dict(
        video_frames=2, kernel_size=(2, 14, 14), audio_kernel_size=16, audio_stride=10, out_embed_dim=768,
        vision_embed_dim=1024, vision_num_blocks=24, vision_num_heads=16, audio_embed_dim=768,
        audio_num_blocks=12, audio_num_heads=12, audio_num_mel_bins=128, audio_target_len=204,
        audio_drop_path=0.1, text_embed_dim=768, text_num_blocks=12, text_num_heads=12,
        depth_embed_dim=384, depth_kernel_size=16, depth_num_blocks=12, depth_num_heads=8,
        depth_drop_path=0.0, thermal_embed_dim=768, thermal_kernel_size=16, thermal_num_blocks=12,
        thermal_num_heads=12, thermal_drop_path=0.0, imu_embed_dim=512, imu_kernel_size=8,
        imu_num_blocks=6, imu_num_heads=8, imu_drop_path=0.7,
    )  # fmt: skip
    fields = [field.name for field in dataclasses.fields(ImageBindConfig)]
    assert fields[: len(official)] == list(official)
    assert {name: getattr(ImageBindConfig(), name) for name in official} == official
    changed = {
        k: v for k, v in dataclasses.asdict(IMAGEBIND_HUGE).items() if getattr(ImageBindConfig(), k) != v
    }
    assert changed == {
        "vision_embed_dim": 1280, "vision_num_blocks": 32, "text_embed_dim": 1024,
        "text_num_blocks": 24, "text_num_heads": 16, "out_embed_dim": 1024,
    }  # fmt: skip
    assert ImageBindConfig.huge() is IMAGEBIND_HUGE
    tokens = {trunk: IMAGEBIND_HUGE.num_tokens(trunk) for trunk in TRUNKS}
    assert tokens == {"vision": 257, "text": 77, "audio": 229, "depth": 197, "thermal": 197, "imu": 251}


@pytest.fixture(scope="module")
def huge_on_meta() -> ImageBind:
    with torch.device("meta"):
        return ImageBind(IMAGEBIND_HUGE)


def test_huge_state_dict_matches_the_official_keys_shapes_and_kinds(huge_on_meta):
    expected = [line for line in KEYS_TSV.read_text().splitlines() if not line.startswith("#")]
    buffers = {name for name, _ in huge_on_meta.named_buffers()}
    actual = [
        f"{key}\t{list(value.shape)}\t{'buffer' if key in buffers else 'param'}"
        for key, value in huge_on_meta.state_dict().items()
    ]
    assert len(expected) == 1311
    assert actual == expected  # same keys, shapes and kinds, in the official order


def test_huge_parameter_counts_per_modality(huge_on_meta):
    parts = ("modality_preprocessors", "modality_trunks", "modality_heads", "modality_postprocessors")
    counts = {
        trunk: [sum(p.numel() for p in getattr(huge_on_meta, part)[trunk].parameters()) for part in parts]
        for trunk in TRUNKS
    }
    assert counts == {
        "vision": [1_835_520, 629_680_640, 1_313_280, 0],
        "text": [50_672_640, 302_309_376, 1_050_624, 1],
        "audio": [374_784, 85_072_896, 787_968, 0],
        "depth": [175_104, 21_302_784, 393_984, 0],
        "thermal": [350_208, 85_072_896, 787_968, 0],
        "imu": [154_624, 18_920_448, 525_312, 0],
    }
    assert sum(p.numel() for p in huge_on_meta.parameters()) == 1_200_781_057


def test_fixed_logit_scales_are_buffers_with_the_official_values():
    model = ImageBind(SMALL)
    state = model.state_dict()
    scales = {m: state[f"modality_postprocessors.{m}.1.log_logit_scale"].item() for m in TRUNKS[1:]}
    assert scales == pytest.approx(
        {
            "text": math.log(1 / 0.07),
            "audio": math.log(20),
            "depth": math.log(5),
            "thermal": math.log(10),
            "imu": math.log(5),
        }
    )
    assert "modality_postprocessors.text.1.log_logit_scale" in dict(model.named_parameters())
    mask = state["modality_preprocessors.text.mask"]
    assert torch.equal(mask.isinf(), torch.ones_like(mask, dtype=torch.bool).triu(1))
    assert (mask[~mask.isinf()] == 0).all()


def test_only_requested_modalities_are_built():
    model = ImageBind(SMALL, ["imu", "audio"])
    assert model.modalities == ("audio", "imu")
    assert {key.split(".")[1] for key in model.state_dict()} == {"audio", "imu"}
    with pytest.raises(ValueError, match="built without the vision trunk"):
        model.encode("vision", torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown ImageBind modality 'rgb'"):
        ImageBind(SMALL, ["rgb"])


# --- parity --------------------------------------------------------------------------------------


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_forward_matches_the_reference_for_all_six_modalities(small_model):
    inputs = small_inputs()
    state = small_model.state_dict()
    with torch.no_grad():
        outputs = small_model(inputs)
        for m in TRUNKS:
            assert outputs[m].shape == (2, SMALL.out_embed_dim)
            assert_close(outputs[m], reference_forward(state, SMALL, m, inputs[m]))
    norms = {m: outputs[m].norm(dim=-1) for m in TRUNKS}
    assert_close(norms["vision"], torch.ones(2))
    assert_close(norms["audio"], torch.full((2,), 20.0))
    assert_close(norms["text"], torch.full((2,), 100.0))  # exp(6) clamped


def test_encode_returns_reference_tokens_and_head_output(small_model):
    inputs = small_inputs(seed=2)
    state = small_model.state_dict()
    with torch.no_grad():
        for m in TRUNKS:
            encoded = small_model.encode(m, inputs[m])
            tokens = reference_tokens(state, SMALL, m, inputs[m])
            assert encoded.tokens.shape == (2, SMALL.num_tokens(m), SMALL.embed_dim(m))
            assert_close(encoded.tokens, tokens)
            assert_close(encoded.pooled, reference_pooled(state, SMALL, m, inputs[m], tokens))
            assert_close(encoded.embedding, small_model({m: inputs[m]})[m])


def test_text_is_causal_and_pooled_at_the_end_of_text(small_model):
    g = torch.Generator().manual_seed(3)
    ids = text_ids(2, [4, 9], g)
    changed = ids.clone()
    changed[:, 10] = 5  # after both EOT positions: invisible under the causal mask
    changed[1, 11] = 7
    with torch.no_grad():
        before, after = small_model({"text": ids})["text"], small_model({"text": changed})["text"]
        assert_close(after, before)
        changed[0, 2] = (ids[0, 2] + 1) % (EOT - 2) + 1  # before row 0's EOT: must matter
        moved = small_model({"text": changed})["text"]
    assert not torch.allclose(moved[0], before[0])
    assert_close(moved[1], before[1])


def test_multi_clip_audio_and_video_are_averaged_without_renormalising(small_model):
    g = torch.Generator().manual_seed(4)
    audio = torch.randn(2, 3, 1, 36, 46, generator=g)  # [B, clips, 1, mel, time]
    video = torch.randn(2, 2, 3, 2, 32, 32, generator=g)  # [B, clips, 3, T, H, W]
    state = small_model.state_dict()
    with torch.no_grad():
        out = small_model({"audio": audio, "vision": video})
        assert_close(out["audio"], reference_forward(state, SMALL, "audio", audio))
        assert_close(out["vision"], reference_forward(state, SMALL, "vision", video))
        per_clip = small_model({"audio": audio[:, 1]})["audio"]
        encoded = small_model.encode("vision", video)
    assert (out["audio"].norm(dim=-1) < 20.0 - 1e-3).all()  # a mean of scaled unit vectors
    assert not torch.allclose(out["audio"], per_clip)
    assert encoded.tokens.shape == (2, 17, 32) and encoded.pooled.shape == (2, 24)
    assert_close(encoded.embedding, out["vision"])


def test_a_two_frame_clip_of_one_image_equals_the_image(small_model):
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        still = small_model({"vision": image})["vision"]
        clip = small_model({"vision": image.unsqueeze(2).repeat(1, 1, 2, 1, 1).unsqueeze(1)})["vision"]
    assert_close(clip, still)


def test_positional_embedding_is_interpolated_for_another_image_size(small_model):
    image = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(6))  # 6x6 patches, stored 4x4
    state = small_model.state_dict()
    with torch.no_grad():
        encoded = small_model.encode("vision", image)
        reference = reference_forward(state, SMALL, "vision", image)
    assert encoded.tokens.shape == (2, 37, 32)
    assert_close(encoded.embedding, reference)
    with pytest.raises(ValueError, match="square patch grids"):
        small_model.encode("audio", torch.zeros(1, 1, 36, 56))


def test_drop_path_acts_in_training_only():
    model = randomized(ImageBind(dataclasses.replace(SMALL, imu_drop_path=0.9), ["imu"]))
    imu = torch.randn(2, 6, 80, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        first, second = model({"imu": imu})["imu"], model({"imu": imu})["imu"]
        assert torch.equal(first, second)
        torch.manual_seed(0)
        trained = model.train()({"imu": imu})["imu"]
    assert not torch.allclose(trained, first)


# --- bf16 ------------------------------------------------------------------------------------


def bf16_agrees(model: ImageBind, inputs: dict[str, torch.Tensor], device: str) -> None:
    with torch.no_grad():
        full = {m: v.double() for m, v in model.to(device)(_to(inputs, device, torch.float32)).items()}
        half = model.to(device=device, dtype=torch.bfloat16)(_to(inputs, device, torch.bfloat16))
    model.float().cpu()
    for m in TRUNKS:
        assert half[m].dtype == torch.bfloat16 and half[m].isfinite().all(), m
        cosine = F.cosine_similarity(half[m].double(), full[m], dim=-1)
        assert (cosine > 0.99).all(), (m, cosine)


def _to(inputs: dict[str, torch.Tensor], device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {
        m: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for m, v in inputs.items()
    }


def test_bfloat16_agrees_with_float32_on_cpu():
    torch.manual_seed(0)
    model = ImageBind(SMALL).eval()  # its own init: randomized() weights are too large for bf16 to track
    inputs = small_inputs(seed=8)
    inputs["audio"] = torch.randn(2, 3, 1, 36, 46)
    bf16_agrees(model, inputs, "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bfloat16_agrees_with_float32_on_cuda():
    torch.manual_seed(0)
    model = ImageBind(SMALL).eval()
    inputs = small_inputs(seed=9)
    inputs["vision"] = torch.randn(2, 2, 3, 2, 48, 48)  # clips, and the fp32 interpolation path
    bf16_agrees(model, inputs, "cuda")


# --- checkpoints -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory, small_model) -> Path:
    path = tmp_path_factory.mktemp("imagebind") / "imagebind_small.pth"
    torch.save({key: value.clone() for key, value in small_model.state_dict().items()}, path)
    return path


def test_a_checkpoint_loads_strictly_and_reproduces_the_model(small_checkpoint, small_model):
    loaded = load_imagebind(small_checkpoint, config=SMALL)
    assert not loaded.training
    saved = torch.load(small_checkpoint, weights_only=True)
    assert list(loaded.state_dict()) == list(saved)
    for key, value in loaded.state_dict().items():
        assert not value.is_meta and torch.equal(value, saved[key]), key
    inputs = small_inputs(seed=10)
    with torch.no_grad():
        for m, value in loaded(inputs).items():
            assert torch.equal(value, small_model({m: inputs[m]})[m])


def test_loading_one_modality_keeps_only_its_tensors(small_checkpoint):
    loaded = load_imagebind(small_checkpoint, modalities=["audio"], config=SMALL)
    saved = torch.load(small_checkpoint, weights_only=True)
    audio_keys = [key for key in saved if key.split(".")[1] == "audio"]
    assert len(audio_keys) == 5 + 2 * 14 + 3 + 1  # preprocessor, 2 blocks, head, logit scale
    assert list(loaded.state_dict()) == audio_keys
    assert loaded.modalities == ("audio",)
    assert not any(p.is_meta for p in loaded.parameters())
    assert len(list(loaded.modules())) == len(list(ImageBind(SMALL, ["audio"]).modules()))


def test_weights_load_into_an_initialised_model_by_copy(small_checkpoint):
    model = ImageBind(SMALL, ["depth"])
    loaded = load_imagebind_weights(model, small_checkpoint)
    saved = torch.load(small_checkpoint, weights_only=True)
    assert sorted(loaded) == sorted(k for k in saved if ".depth." in k)
    assert torch.equal(model.state_dict()["modality_trunks.depth.blocks.1.attn.bias_v"],
                       saved["modality_trunks.depth.blocks.1.attn.bias_v"])  # fmt: skip


def test_a_wrong_checkpoint_is_refused_listing_keys_and_shapes(tmp_path, small_checkpoint):
    state = torch.load(small_checkpoint, weights_only=True)
    state["modality_trunks.audio.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 3)
    del state["modality_heads.audio.2.weight"]
    state["modality_trunks.audio.blocks.9.norm_1.weight"] = torch.zeros(16)
    state["llama_proj.weight"] = torch.zeros(2, 2)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError) as caught:
        load_imagebind(path, modalities=["audio"], config=SMALL)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert "missing modality_heads.audio.2.weight" in message
    assert "unexpected llama_proj.weight, modality_trunks.audio.blocks.9.norm_1.weight" in message
    assert "wrong shape modality_trunks.audio.blocks.0.attn.in_proj_weight (3, 3) != (48, 16)" in message
    with pytest.raises(ModelLoadError, match=r"wrong shape .*vision"):
        load_imagebind(small_checkpoint, modalities=["vision"], config=IMAGEBIND_HUGE)


def test_a_missing_or_corrupt_checkpoint_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match=r"not found: .*absent\.pth"):
        load_imagebind(tmp_path / "absent.pth", config=SMALL)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelLoadError, match=r"corrupt\.pth"):
        load_imagebind(corrupt, config=SMALL)
