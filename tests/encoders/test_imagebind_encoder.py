"""The ``imagebind`` encoder spec: options, geometry, forward shapes, per-trunk weight loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from anymodal import EncoderGeometry, EncoderOutput, TensorLayout, UsageError
from anymodal.config.validate import build
from anymodal.contract.registry import load_registry
from anymodal.encoders.imagebind import IMAGEBIND_ENCODER, ImageBind, ImageBindConfig, ImageBindOptions
from anymodal.testing import TINY_IMAGEBIND

SMALL_OVERRIDES = {
    "kernel_size": [2, 8, 8],
    "image_size": 32,
    "out_embed_dim": 24,
    "vision_embed_dim": 32,
    "vision_num_blocks": 2,
    "vision_num_heads": 4,
    "audio_embed_dim": 16,
    "audio_num_blocks": 2,
    "audio_num_heads": 2,
    "audio_num_mel_bins": 36,
    "audio_target_len": 46,
}


def small(**extra) -> ImageBindOptions:
    return build(ImageBindOptions, {"config": SMALL_OVERRIDES, **extra})


def test_the_spec_is_registered_by_core():
    registry = load_registry(entry_points=False)
    assert registry.get("encoder", "imagebind") is IMAGEBIND_ENCODER
    assert IMAGEBIND_ENCODER.options is ImageBindOptions


def test_huge_geometry_without_building_the_model():
    options = ImageBindOptions()
    config = options.image_bind_config()
    geometries = {
        modality: (config.embed_dim(trunk), config.num_tokens(trunk))
        for modality in ("image", "video", "audio", "depth", "thermal", "imu", "text")
        for trunk in [options.trunk_for(modality)]
    }
    assert geometries == {
        "image": (1280, 257), "video": (1280, 257), "audio": (768, 229), "depth": (384, 197),
        "thermal": (768, 197), "imu": (512, 251), "text": (1024, 77),
    }  # fmt: skip
    assert config.out_embed_dim == 1024


def test_image_encoder_at_small_dims():
    encoder = IMAGEBIND_ENCODER.build("image", small())
    assert encoder.geometry == EncoderGeometry(feature_dim=32, num_tokens=17, pooled_dim=24)
    assert encoder.model.modalities == ("vision",)
    out = encoder(torch.randn(2, 3, 32, 32))
    assert isinstance(out, EncoderOutput)
    assert out.features.shape == (2, 17, 32) and out.pooled.shape == (2, 24)
    torch.testing.assert_close(out.pooled.norm(dim=-1), torch.ones(2))


def test_video_clips_use_the_vision_trunk_and_are_averaged():
    encoder = IMAGEBIND_ENCODER.build("video", small()).eval()
    clips = torch.randn(2, 3, 3, 2, 32, 32)  # [B, clips, 3, T, H, W]
    with torch.no_grad():
        out = encoder(clips)
        # one clip stays 6-D: a 5-D [B, 3, T, H, W] would be read as clips (the official rule)
        per_clip = [encoder(clips[:, s : s + 1]) for s in range(3)]
    assert out.features.shape == (2, 17, 32)
    torch.testing.assert_close(out.pooled, torch.stack([o.pooled for o in per_clip]).mean(0))
    torch.testing.assert_close(out.features, torch.stack([o.features for o in per_clip]).mean(0))


def test_audio_encoder_postprocessing_choices():
    torch.manual_seed(0)
    full = IMAGEBIND_ENCODER.build("audio", small()).eval()
    assert full.geometry == EncoderGeometry(feature_dim=16, num_tokens=13, pooled_dim=24)
    normalize_only = IMAGEBIND_ENCODER.build("audio", small(postprocess="normalize")).eval()
    raw = IMAGEBIND_ENCODER.build("audio", small(postprocess=False)).eval()
    normalize_only.load_state_dict(full.state_dict())
    raw.load_state_dict(full.state_dict())
    audio = torch.randn(2, 3, 1, 36, 46)  # [B, clips, 1, mel, time]
    with torch.no_grad():
        scaled, unit, head = full(audio).pooled, normalize_only(audio).pooled, raw(audio).pooled
        per_clip = torch.stack([raw(audio[:, s]).pooled for s in range(3)], dim=1)
    torch.testing.assert_close(scaled, 20 * unit)
    torch.testing.assert_close(unit, F.normalize(per_clip, dim=-1).mean(dim=1))
    torch.testing.assert_close(head, per_clip.mean(dim=1))


def test_load_weights_takes_only_this_trunk(tmp_path: Path):
    torch.manual_seed(1)
    config = ImageBindOptions(config=SMALL_OVERRIDES).image_bind_config()
    source = ImageBind(config, ["vision", "audio"])
    path = tmp_path / "imagebind.pth"
    torch.save(source.state_dict(), path)
    encoder = IMAGEBIND_ENCODER.build("audio", small())
    encoder.load_weights(path)
    expected = {k: v for k, v in source.state_dict().items() if ".audio." in k}
    assert list(encoder.model.state_dict()) == list(expected)
    for key, value in encoder.model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_it_declares_what_its_imu_trunk_takes_and_no_other_layout():
    assert IMAGEBIND_ENCODER.takes is not None
    huge = IMAGEBIND_ENCODER.takes("imu", None)
    assert huge == TensorLayout((6, 2000), names=("channels", "samples"))
    options = build(ImageBindOptions, {"trunk": "imu", "config": {**TINY_IMAGEBIND, "imu_length": 80}})
    taken = IMAGEBIND_ENCODER.takes("gyro", options)
    assert taken is not None and str(taken) == "[channels=6, samples=80] float32"
    encoder = IMAGEBIND_ENCODER.build("gyro", options)
    with torch.no_grad():
        output = encoder(torch.zeros(2, 6, 80))
    assert tuple(output.features.shape) == (2, encoder.geometry.num_tokens, encoder.geometry.feature_dim)
    assert all(IMAGEBIND_ENCODER.takes(name, None) is None for name in ("image", "video", "audio", "depth"))


def test_other_modalities_need_a_trunk():
    with pytest.raises(UsageError, match="no default trunk for the spectrogram modality"):
        IMAGEBIND_ENCODER.build("spectrogram", small())
    encoder = IMAGEBIND_ENCODER.build("spectrogram", small(trunk="audio"))
    assert encoder.trunk == "audio"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"config": {"vision_embd_dim": 8}},
            r"unknown key 'config.vision_embd_dim' \(did you mean 'vision_embed_dim'\?\)",
        ),
        ({"config": {"image_size": "big"}}, "config.image_size: expected an integer"),
        ({"preset": "hueg"}, r"unknown ImageBind preset 'hueg' \(did you mean 'huge'\?\)"),
        ({"trunk": "visoin"}, r"unknown ImageBind trunk 'visoin' \(did you mean 'vision'\?\)"),
    ],
)
def test_bad_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        build(ImageBindOptions, options)
    with pytest.raises(UsageError, match=message):
        IMAGEBIND_ENCODER.build("image", options)


def test_kernel_size_override_becomes_a_tuple():
    assert small().image_bind_config().kernel_size == (2, 8, 8)
    assert isinstance(small().image_bind_config(), ImageBindConfig)


def test_the_spec_module_imports_without_torch():
    code = (
        "import sys\n"
        "from anymodal.encoders.imagebind.spec import IMAGEBIND_ENCODER, ImageBindOptions\n"
        "ImageBindOptions(config={'vision_embed_dim': 64}).image_bind_config()\n"
        "import anymodal.runtime.builtin\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
