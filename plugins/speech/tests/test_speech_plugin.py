"""The speech modality and the whisper encoder are found through the entry point and work together."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import torch
from anymodal_speech import plugin
from anymodal_speech.options import WhisperEncoderOptions
from anymodal_speech.testing import write_wav

import anymodal
from anymodal.plugins import load_registry
from anymodal.testing import prepare_file, registered_modality


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
