"""The speech modality and the whisper encoder are found through the entry point and work together."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from anymodal_speech import plugin
from anymodal_speech.options import WhisperEncoderOptions
from anymodal_speech.testing import save_whisper_checkpoint, tiny_whisper, write_wav
from click.testing import CliRunner

import anymodal
from anymodal.cli import cli
from anymodal.contract.registry import load_registry
from anymodal.testing import prepare_file, registered_modality, save_scripted_llm


def test_entry_point_registers_speech_and_whisper() -> None:
    try:
        importlib.metadata.distribution("anymodal-speech")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("anymodal-speech is not installed: pip install -e plugins/speech")
    registry = load_registry()
    for kind, name in (("modality", "speech"), ("encoder", "whisper")):
        owner = registry.owners[(kind, name)]
        assert (owner.name, owner.distribution, owner.status) == ("speech", "anymodal-speech", "ok")
    spec = registry.modalities["speech"]
    assert (spec.default_encoder, spec.default_projector, spec.placeholder, spec.flag) == (
        "whisper",
        "resampler",
        "<speech>",
        "--speech",
    )
    encoder = registry.get("encoder", "whisper")
    assert encoder.options is WhisperEncoderOptions and encoder.modalities == ("speech",)


def test_a_wav_becomes_whisper_log_mel_through_the_spec(tmp_path: Path) -> None:
    spec = registered_modality(plugin, "speech")
    path = write_wav(tmp_path / "hello.wav")
    mel = prepare_file(spec, path)
    assert mel.dtype == torch.float32 and tuple(mel.shape) == (80, 3000)
    assert tuple(prepare_file(spec, path, n_mels=128).shape) == (128, 3000)
    with pytest.raises(anymodal.UsageError, match="80 or 128"):
        prepare_file(spec, path, n_mels=40)


def test_the_registered_encoder_takes_the_spec_output(tmp_path: Path) -> None:
    specs: list[anymodal.EncoderSpec] = []
    plugin.register_encoders(specs.append)
    (encoder_spec,) = specs
    options = WhisperEncoderOptions(size="tiny", n_audio_state=8, n_audio_head=2, n_audio_layer=1)
    encoder = encoder_spec.build("speech", options)
    assert encoder.geometry == anymodal.EncoderGeometry(8, 1500, 8)
    mel = prepare_file(registered_modality(plugin, "speech"), write_wav(tmp_path / "a.wav"))
    with torch.no_grad():
        output = encoder(mel.unsqueeze(0))
    assert isinstance(output, anymodal.EncoderOutput)
    assert output.features.shape == (1, 1500, 8)
    torch.testing.assert_close(output.pooled, output.features.mean(dim=1))


def test_anymodal_chat_answers_about_a_wav(tmp_path: Path, use_plugins: Callable[..., object]) -> None:
    """The whole path a user takes: `anymodal chat --speech FILE`, with a tiny Whisper checkpoint
    in the released format and a scripted LLM whose answer is known."""
    use_plugins(plugin)
    save_scripted_llm(tmp_path / "llm", "It sounds calm.")
    save_whisper_checkpoint(tiny_whisper(), tmp_path / "tiny.pt", half=True)
    (tmp_path / "anymodal.yaml").write_text(
        "model:\n  llm: {path: ./llm}\n  template: plain\n  modalities:\n"
        "    speech: {encoder: {weights: ./tiny.pt}, projector: {options: {num_queries: 4, num_heads: 2}}}\n"
        "generation: {max_new_tokens: 12}\n"
    )
    wav = write_wav(tmp_path / "hello.wav", seconds=2.0)
    runner = CliRunner()
    result = runner.invoke(cli, ["chat", "--model", str(tmp_path), "--speech", str(wav), "What did I say?"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "It sounds calm."
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    failed = runner.invoke(cli, ["chat", "--model", str(tmp_path), "--speech", str(broken), "Hi"])
    assert failed.exit_code == 1
    assert failed.stderr.startswith(f"error: speech file cannot be decoded: {broken}")
