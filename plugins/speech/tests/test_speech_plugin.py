"""The speech modality and whisper encoder are found through the entry point and cost nothing to import."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from anymodal_speech import plugin
from anymodal_speech.options import WhisperEncoderOptions

import anymodal
from anymodal.plugins import load_registry
from anymodal.testing import prepare_file, registered_modality


def _write_wav(path: Path, seconds: float = 1.0) -> Path:
    """A 16-bit mono wav through the standard library."""
    t = np.arange(round(seconds * 16000)) / 16000
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.tobytes())
    return path


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, anymodal_speech.plugin\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'decord', 'whisper') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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
    path = _write_wav(tmp_path / "hello.wav")
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
    mel = prepare_file(registered_modality(plugin, "speech"), _write_wav(tmp_path / "a.wav"))
    with torch.no_grad():
        output = encoder(mel.unsqueeze(0))
    assert isinstance(output, anymodal.EncoderOutput)
    assert output.features.shape == (1, 1500, 8)
    torch.testing.assert_close(output.pooled, output.features.mean(dim=1))
