"""Decoding real files written by the test; bad, silent and over-long files are refused by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from anymodal_audio import decode
from anymodal_audio.decode import DecodedAudio, load_audio
from anymodal_audio.preprocessing import preprocess

import anymodal

Tone = Callable[..., np.ndarray]
Peak = Callable[[np.ndarray, int], float]


def test_wav_16bit_stereo_44k(tmp_path: Path, tone: Tone) -> None:
    stereo = np.stack([tone(1.5, 44100, freq=440.0), tone(1.5, 44100, freq=1000.0, amplitude=0.2)], axis=1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, 44100, subtype="PCM_16")
    decoded = load_audio(path)
    assert decoded.sample_rate == 44100
    assert decoded.samples.shape == (2, 66150)
    assert decoded.samples.dtype == np.float32
    assert np.abs(decoded.samples - stereo.T).max() <= 1.0 / 32768
    # The fbank reads channel 0 only, as Kaldi does: the right channel (a 1 kHz tone the left lacks)
    # changes the features only through the clip mean, which per-frame DC removal cancels up to
    # float32 rounding in near-silent mel bins (~2e-4 after normalisation).
    left_only = DecodedAudio(decoded.samples[:1], 44100, path)
    assert torch.allclose(preprocess(decoded), preprocess(left_only), atol=1e-3)
    assert preprocess(decoded).shape == (3, 1, 128, 204)


@pytest.mark.parametrize(("suffix", "subtype"), [(".flac", "PCM_16"), (".ogg", "VORBIS")])
def test_flac_and_ogg(tmp_path: Path, tone: Tone, peak_frequency: Peak, suffix: str, subtype: str) -> None:
    path = tmp_path / f"tone{suffix}"
    soundfile.write(path, tone(1.0, 22050, freq=440.0), 22050, subtype=subtype)
    decoded = load_audio(path)
    assert decoded.sample_rate == 22050
    assert decoded.samples.shape == (1, 22050)
    assert peak_frequency(decoded.samples[0], 22050) == 440.0


def test_mp3(write_av: Callable[..., Path], tone: Tone, peak_frequency: Peak) -> None:
    path = write_av("tone.mp3", tone(1.5, 44100)[None], codec="libmp3lame")
    decoded = load_audio(path)
    assert decoded.samples.shape[0] == 1
    assert abs(decoded.duration - 1.5) < 0.1
    middle = decoded.samples[0, decoded.sample_rate // 4 : decoded.sample_rate]
    assert abs(peak_frequency(middle, decoded.sample_rate) - 440.0) <= 2.0


def test_mp3_through_decord(
    write_av: Callable[..., Path], tone: Tone, peak_frequency: Peak, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The path taken where libsndfile is older than 1.1 and cannot read mp3.
    monkeypatch.setattr(decode, "_soundfile_reads_mp3", lambda: False)
    path = write_av("tone.mp3", tone(1.5, 44100)[None], codec="libmp3lame")
    decoded = load_audio(path)
    assert decoded.sample_rate == 16000 and decoded.samples.shape[0] == 1
    assert abs(decoded.duration - 1.5) < 0.1
    assert abs(peak_frequency(decoded.samples[0, 4000:16000], 16000) - 440.0) <= 2.0


def test_audio_track_of_mp4(write_av: Callable[..., Path], tone: Tone, peak_frequency: Peak) -> None:
    path = write_av("clip.mp4", tone(1.5, 44100)[None], codec="aac", video_seconds=1.5)
    decoded = load_audio(path)
    assert decoded.sample_rate == 16000
    assert decoded.samples.shape[0] == 1
    assert abs(decoded.duration - 1.5) < 0.1
    assert abs(peak_frequency(decoded.samples[0, 4000:20000], 16000) - 440.0) <= 2.0
    assert preprocess(decoded).shape == (3, 1, 128, 204)


def test_stereo_mp4_is_downmixed_not_corrupt(write_av: Callable[..., Path], tone: Tone) -> None:
    # decord 0.6 garbles multichannel tracks; the loader asks for ffmpeg's mono downmix instead.
    stereo = np.stack([tone(1.0, 48000, freq=440.0), tone(1.0, 48000, freq=880.0, amplitude=0.3)])
    decoded = load_audio(write_av("stereo.mp4", stereo, rate=48000, codec="aac"))
    assert decoded.samples.shape[0] == 1
    assert np.isfinite(decoded.samples).all()
    assert np.abs(decoded.samples).max() < 1.5


def test_video_without_audio_is_refused(write_av: Callable[..., Path]) -> None:
    path = write_av("silent.mp4", None, video_seconds=1.0)
    with pytest.raises(anymodal.InputError, match="no audio stream") as error:
        load_audio(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".mp4"])
def test_corrupt_file_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"RIFF\x00\x00not really audio" * 50)
    with pytest.raises(anymodal.InputError, match="cannot be decoded") as error:
        load_audio(path)
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_too_long_wav_is_refused_from_its_header(
    tmp_path: Path, tone: Tone, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "long.wav"
    soundfile.write(path, tone(2.0, 16000), 16000)
    monkeypatch.setattr(decode, "MAX_AUDIO_SECONDS", 1.0)
    reads: list[str] = []
    monkeypatch.setattr(soundfile, "read", lambda *args, **kwargs: reads.append("read"))
    with pytest.raises(anymodal.InputError, match="too long") as error:
        load_audio(path)
    assert str(path) in str(error.value) and "limit is 1 s" in str(error.value)
    assert reads == [], "refused before decoding"


def test_too_long_video_is_refused(
    write_av: Callable[..., Path], tone: Tone, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_av("long.mp4", tone(2.0, 16000)[None], rate=16000, codec="aac", video_seconds=2.0)
    monkeypatch.setattr(decode, "MAX_AUDIO_SECONDS", 1.0)
    with pytest.raises(anymodal.InputError, match="too long") as error:
        load_audio(path)
    assert str(path) in str(error.value)


def test_too_long_audio_only_container_is_refused_after_decoding(
    write_av: Callable[..., Path], tone: Tone, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_av("long.mp4", tone(2.0, 16000)[None], rate=16000, codec="aac")
    monkeypatch.setattr(decode, "MAX_AUDIO_SECONDS", 1.0)
    with pytest.raises(anymodal.InputError, match="too long"):
        load_audio(path)


def test_non_finite_samples_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    soundfile.write(path, np.array([0.0, np.nan, 0.1] * 1000, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(anymodal.InputError, match="non-finite"):
        load_audio(path)


def test_extensions_match_the_registered_kinds() -> None:
    from anymodal_audio import plugin

    assert tuple(f".{kind}" for kind in plugin.FILE_KINDS) == decode.FILE_KINDS
