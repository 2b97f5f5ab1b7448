"""The whisper encoder loads openai-whisper checkpoints (encoder only) and computes what Whisper does."""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
from anymodal_speech.encoder import WhisperSpeechEncoder, build
from anymodal_speech.options import SIZES, WhisperEncoderOptions, WhisperSize

import anymodal


def _mel(batch: int = 2, n_mels: int = 80, seed: int = 1) -> torch.Tensor:
    """A log-mel-like batch ``[batch, n_mels, 3000]`` in Whisper's value range."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, n_mels, 3000, generator=generator) * 2.5 - 1.5


def _reference(model: Any, checkpoint: Path) -> Any:
    """What openai-whisper's ``load_model`` builds from ``checkpoint``: Whisper(dims) in float32."""
    from whisper.model import ModelDimensions, Whisper

    loaded = torch.load(checkpoint, weights_only=True)
    reference = Whisper(ModelDimensions(**loaded["dims"]))
    reference.load_state_dict(loaded["model_state_dict"])
    return reference.eval()


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_a_whisper_checkpoint_gives_whispers_own_encoder_output(
    half: bool, tmp_path: Path, make_whisper: Callable[..., Any], save_checkpoint: Callable[..., Path]
) -> None:
    model = make_whisper()
    path = save_checkpoint(model, tmp_path / "tiny.pt", half=half)
    # Built with other dims on purpose: the checkpoint's own dims decide the architecture.
    encoder = build(
        "speech", WhisperEncoderOptions(size="tiny", n_audio_state=8, n_audio_head=2, n_audio_layer=2)
    )
    encoder.load_weights(path)
    assert encoder.geometry == anymodal.EncoderGeometry(feature_dim=16, num_tokens=1500, pooled_dim=16)
    assert all(p.dtype == torch.float32 for p in encoder.parameters())
    mel = _mel()
    with torch.no_grad():
        output = encoder(mel)
        expected = _reference(model, path).encoder(mel)
        original = model.encoder(mel)
    assert output.features.shape == (2, 1500, 16) and output.pooled.shape == (2, 16)
    torch.testing.assert_close(output.features, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(output.pooled, expected.mean(dim=1), rtol=0, atol=1e-6)
    # fp16 storage rounds the weights, so the output moves a little, and only then.
    assert torch.equal(output.features, original) != half
    torch.testing.assert_close(output.features, original, rtol=0, atol=0.05)


def test_only_the_encoder_is_loaded(tiny_checkpoint: tuple[Any, Path]) -> None:
    model, path = tiny_checkpoint
    encoder = WhisperSpeechEncoder(WhisperEncoderOptions(n_audio_state=16, n_audio_head=2).dims())
    encoder.load_weights(path)
    saved = torch.load(path, weights_only=True)["model_state_dict"]
    assert any(key.startswith("decoder.") for key in saved)  # the file does hold a decoder
    assert set(encoder.state_dict()) == {key for key in saved if key.startswith("encoder.")}
    assert not [name for name, _ in encoder.named_modules() if "decoder" in name]
    own = sum(p.numel() for p in encoder.parameters())
    assert (
        own == sum(p.numel() for p in model.encoder.parameters()) < sum(p.numel() for p in model.parameters())
    )
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_loading_keeps_the_modules_device_and_dtype(tiny_checkpoint: tuple[Any, Path]) -> None:
    _, path = tiny_checkpoint
    encoder = build("speech", {"size": "tiny", "n_audio_state": 8, "n_audio_head": 2, "n_audio_layer": 1}).to(
        torch.bfloat16
    )
    encoder.load_weights(path)
    assert {p.dtype for p in encoder.parameters()} == {torch.bfloat16}
    assert encoder.encoder.positional_embedding.dtype == torch.bfloat16
    output = encoder(_mel(batch=1).to(torch.bfloat16))
    assert output.features.shape == (1, 1500, 16) and torch.isfinite(output.features.float()).all()


def _state(model: Any) -> dict[str, torch.Tensor]:
    return dict(model.state_dict())


BAD_CHECKPOINTS: dict[str, tuple[Callable[[Any, Path], Any], str]] = {
    # name: (write the bad file at the path (or nothing, to leave it missing), a part of the message)
    "missing": (lambda model, path: None, "Whisper checkpoint not found"),
    "directory": (lambda model, path: path.mkdir(), "is not a file"),
    "garbage": (
        lambda model, path: path.write_bytes(b"\x80\x02 not a checkpoint" * 20),
        "cannot read Whisper checkpoint",
    ),
    "a list": (lambda model, path: torch.save([1, 2, 3], path), "holds a list, not a dict"),
    "no dims": (
        lambda model, path: torch.save({"model_state_dict": _state(model)}, path),
        "no 'dims' (it holds 'model_state_dict')",
    ),
    "flat state dict": (
        lambda model, path: torch.save(_state(model), path),
        "no 'dims' or 'model_state_dict'",
    ),
    "no model_state_dict": (
        lambda model, path: torch.save({"dims": asdict(model.dims)}, path),
        "no 'model_state_dict'",
    ),
    "incomplete dims": (
        lambda model, path: torch.save(
            {"dims": {"n_mels": 80, "n_audio_ctx": 1500}, "model_state_dict": _state(model)}, path
        ),
        "'dims' is incomplete (missing n_audio_state, n_audio_head, n_audio_layer)",
    ),
    "unusable dims": (
        lambda model, path: torch.save(
            {"dims": {**asdict(model.dims), "n_mels": 64}, "model_state_dict": {}}, path
        ),
        "cannot use this Whisper encoder: n_mels is 64",
    ),
    "missing keys": (
        lambda model, path: torch.save(
            {
                "dims": asdict(model.dims),
                "model_state_dict": {
                    k: v
                    for k, v in _state(model).items()
                    if k not in ("encoder.ln_post.weight", "encoder.blocks.0.attn.key.weight")
                },
            },
            path,
        ),
        "missing encoder.blocks.0.attn.key.weight, encoder.ln_post.weight",
    ),
    "mis-shaped": (
        lambda model, path: torch.save(
            {
                "dims": {**asdict(model.dims), "n_audio_state": 32, "n_audio_head": 4},
                "model_state_dict": _state(model),
            },
            path,
        ),
        "wrong shape encoder.blocks.0.attn.key.weight (16, 16) != (32, 32)",
    ),
    "extra layer": (
        lambda model, path: torch.save(
            {"dims": {**asdict(model.dims), "n_audio_layer": 0}, "model_state_dict": _state(model)}, path
        ),
        "unexpected encoder.blocks.0.attn.key.weight, encoder.blocks.0.attn.out.bias, "
        "encoder.blocks.0.attn.out.weight (+12 more)",
    ),
    "not tensors": (
        lambda model, path: torch.save(
            {
                "dims": asdict(model.dims),
                "model_state_dict": {**_state(model), "encoder.conv1.weight": [1.0]},
            },
            path,
        ),
        "encoder.conv1.weight in 'model_state_dict' are not tensors",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_each_bad_checkpoint_gives_one_clear_error(
    case: str, tmp_path: Path, make_whisper: Callable[..., Any]
) -> None:
    write, message = BAD_CHECKPOINTS[case]
    path = tmp_path / "bad.pt"
    write(make_whisper(), path)
    encoder = build("speech", {"size": "tiny", "n_audio_state": 8, "n_audio_head": 2, "n_audio_layer": 1})
    before = {key: value.clone() for key, value in encoder.state_dict().items()}
    with pytest.raises(anymodal.ModelLoadError, match=re.escape(message)) as raised:
        encoder.load_weights(path)
    assert str(path) in raised.value.message and raised.value.hint
    # A failed load leaves the encoder as it was.
    assert encoder.geometry.feature_dim == 8
    assert all(torch.equal(value, before[key]) for key, value in encoder.state_dict().items())


def test_a_mel_bin_mismatch_names_the_preprocess_key(
    tmp_path: Path, make_whisper: Callable[..., Any], save_checkpoint: Callable[..., Path]
) -> None:
    large_v3_like = save_checkpoint(make_whisper(n_mels=128), tmp_path / "v3.pt")
    encoder = build("speech", {"size": "tiny", "n_audio_state": 8, "n_audio_head": 2, "n_audio_layer": 1})
    encoder.load_weights(large_v3_like)
    assert encoder(_mel(batch=1, n_mels=128)).features.shape == (1, 1500, 16)
    with pytest.raises(anymodal.UsageError, match="128, 3000] but got 80 mel bins") as raised:
        encoder(_mel(batch=1, n_mels=80))
    assert "modalities.speech.preprocess.n_mels to 128" in str(raised.value)
    with pytest.raises(anymodal.UsageError, match="expects 3000 mel frames"):
        encoder(torch.zeros(1, 128, 2000))


def test_sizes_follow_the_whisper_dims_table() -> None:
    assert set(SIZES) == set(typing.get_args(WhisperSize))
    assert SIZES["base"][1:] == (1500, 512, 8, 6) and SIZES["base"].n_mels == 80
    assert SIZES["medium.en"][2:] == (1024, 16, 24)
    assert SIZES["large-v2"].n_mels == 80 and SIZES["large-v3"].n_mels == SIZES["turbo"].n_mels == 128
    # turbo shrinks the decoder only: its encoder is large-v3's.
    assert SIZES["turbo"] == SIZES["large-v3"] == SIZES["large"]
    with torch.device("meta"):
        default = build("speech", None)
    assert default.geometry == anymodal.EncoderGeometry(512, 1500, 512)
    assert (
        sum(p.numel() for p in default.parameters()) == 19_822_592
    )  # whisper-base encoder: convs + 6 blocks + ln_post


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": "bsae"}, r"unknown Whisper size 'bsae' \(did you mean 'base'\?\)"),
        ({"n_mels": 64}, "n_mels is 64, Whisper's front end makes 80 or 128"),
        ({"n_audio_state": 10, "n_audio_head": 4}, "n_audio_head 4 does not divide n_audio_state 10"),
        ({"n_audio_state": 7, "n_audio_head": 1}, "n_audio_state is 7, it must be even"),
    ],
)
def test_bad_options_are_usage_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(anymodal.UsageError, match=message):
        WhisperEncoderOptions(**options)


@pytest.mark.gpu
def test_the_encoder_runs_in_bfloat16_on_a_gpu(tiny_checkpoint: tuple[Any, Path]) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    model, path = tiny_checkpoint
    encoder = build("speech", {"size": "tiny", "n_audio_state": 8, "n_audio_head": 2, "n_audio_layer": 1})
    encoder.load_weights(path)
    encoder = encoder.to(device="cuda", dtype=torch.bfloat16)
    mel = _mel(batch=2)
    with torch.no_grad():
        output = encoder(mel.to("cuda", torch.bfloat16))
        expected = model.encoder(mel)
    assert output.features.dtype == torch.bfloat16 and output.features.device.type == "cuda"
    torch.testing.assert_close(output.features.float().cpu(), expected, rtol=0.05, atol=0.1)
