"""The log-mel front end equals an independent numpy implementation of Whisper's steps (spec §4.2)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from anymodal_speech import decode, frontend
from anymodal_speech.decode import DecodedSpeech

import anymodal


def reference_log_mel(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """Whisper's log-mel from the spec's steps, in float64 numpy: ``[n_mels, 3000]``."""
    import whisper.audio

    n_fft, hop, n_samples = 400, 160, 480_000
    audio = np.asarray(audio, dtype=np.float64)[:n_samples]
    audio = np.pad(audio, (0, n_samples - len(audio)))
    padded = np.pad(audio, n_fft // 2, mode="reflect")  # torch.stft(center=True), reflect padding
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # [3001, 400]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)[:-1]) ** 2  # drop the last frame: [3000, 201]
    assets = os.path.join(os.path.dirname(whisper.audio.__file__), "assets", "mel_filters.npz")
    with np.load(assets) as filters:
        mel = filters[f"mel_{n_mels}"].astype(np.float64) @ power.T  # [n_mels, 3000]
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def _speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """A chirp with harmonics and noise under a syllable-rate envelope: many mel bins in play."""
    t = np.arange(round(seconds * 16000)) / 16000
    rng = np.random.default_rng(seed)
    pitch = 2 * np.pi * (120 * t + 40 * t**2 / max(seconds, 1))
    voiced = sum(np.sin(k * pitch) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.2 * envelope * voiced + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("seconds", [3.3, 31.0], ids=["padded", "cut"])
def test_log_mel_matches_the_numpy_reference(n_mels: int, seconds: float) -> None:
    audio = _speech_like(seconds)
    mel = frontend.preprocess(audio, n_mels=n_mels)
    assert mel.dtype == torch.float32 and tuple(mel.shape) == (n_mels, 3000)
    expected = reference_log_mel(audio, n_mels)
    # float32 FFT rounding shows in the quietest bins only: a few elements in 10^5 exceed 1e-5.
    difference = np.abs(mel.numpy() - expected)
    assert difference.max() < 5e-5 and (difference > 1e-5).mean() < 1e-4 and difference.mean() < 1e-6
    # The padded tail is silence at the floor: 8 below the maximum in log10, i.e. 2 after (x + 4) / 4.
    if seconds < 30:
        assert np.allclose(mel[:, -10:].numpy(), expected.max() - 2.0, atol=1e-5)


def test_longer_audio_is_cut_to_its_first_30_seconds() -> None:
    audio = _speech_like(40.0)
    torch.testing.assert_close(frontend.log_mel(audio), frontend.log_mel(audio[:480_000]), rtol=0, atol=0)
    assert not torch.equal(frontend.log_mel(audio), frontend.log_mel(audio[16_000:]))


def test_decoded_speech_and_bare_samples_give_the_same_mel(tmp_path: Path) -> None:
    audio = _speech_like(2.0)
    decoded = DecodedSpeech(audio, 2.0, tmp_path / "x.wav")
    assert torch.equal(frontend.preprocess(decoded), frontend.preprocess(audio))
    assert torch.equal(frontend.preprocess(decoded), frontend.preprocess(decoded))


@pytest.mark.parametrize("n_mels", [64, True, "80"])
def test_unsupported_mel_counts_name_the_config_key(n_mels: object) -> None:
    with pytest.raises(anymodal.UsageError, match="80 or 128 mel bins") as raised:
        frontend.preprocess(np.zeros(16000, np.float32), n_mels=n_mels)  # type: ignore[arg-type]
    assert "modalities.speech.preprocess.n_mels" in str(raised.value)


def test_constants_are_whispers() -> None:
    import whisper.audio

    assert decode.SAMPLE_RATE == whisper.audio.SAMPLE_RATE
    assert decode.WINDOW_SAMPLES == whisper.audio.N_SAMPLES
    assert frontend.N_FRAMES == whisper.audio.N_FRAMES


def test_silence_is_finite_and_constant(make_tone: Callable[..., np.ndarray]) -> None:
    mel = frontend.preprocess(np.zeros(8000, np.float32))
    assert torch.isfinite(mel).all() and torch.all(mel == mel[0, 0])
    loud = frontend.preprocess(make_tone(1.0, 16000))
    assert loud.max() > mel.max()
