"""Speech files decode to 16 kHz mono through decord (no ffmpeg binary), and bad ones are InputErrors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from anymodal_speech import decode, plugin
from anymodal_speech.decode import load_speech

import anymodal

MediaWriter = Callable[..., Path]
Tone = Callable[..., np.ndarray]


def _peak_frequency(signal: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1.0 / rate)[np.argmax(spectrum)])


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64))))


# name, writer, codec (for PyAV), source rate, with a video stream
FORMATS = [
    ("speech.wav", "soundfile", "PCM_16", 44100, False),
    ("speech.flac", "soundfile", "PCM_24", 22050, False),
    ("speech.ogg", "soundfile", "VORBIS", 44100, False),
    ("speech.opus", "av", "libopus", 48000, False),
    ("speech.mp3", "av", "mp3", 44100, False),
    ("speech.m4a", "av", "aac", 44100, False),
    ("speech.mp4", "av", "aac", 44100, True),
    ("speech.mkv", "av", "aac", 48000, False),
    ("speech.webm", "av", "libopus", 48000, False),
    ("speech.mov", "av", "aac", 32000, True),
    ("speech.avi", "av", "mp3", 44100, True),
]


@pytest.mark.parametrize(("name", "writer", "codec", "rate", "video"), FORMATS, ids=[f[0] for f in FORMATS])
def test_each_kind_decodes_to_16k_mono(
    name: str,
    writer: str,
    codec: str,
    rate: int,
    video: bool,
    make_tone: Tone,
    write_soundfile: MediaWriter,
    write_av: MediaWriter,
) -> None:
    audio = make_tone(2.0, rate, freq=440.0, amplitude=0.3)
    if writer == "soundfile":
        path = write_soundfile(name, audio, rate, subtype=codec)
    else:
        path = write_av(name, audio[None], rate, codec=codec, video_seconds=2.0 if video else 0.0)
    decoded = load_speech(path)
    assert decoded.path == path and not decoded.truncated
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    # Lossy codecs add priming and padding; the length stays within a tenth of a second.
    assert abs(decoded.duration - 2.0) < 0.1 and len(decoded.samples) == round(decoded.duration * 16000)
    assert abs(_peak_frequency(decoded.samples) - 440.0) < 10.0
    assert abs(_rms(decoded.samples[4000:-4000]) - 0.3 / np.sqrt(2)) < 0.02


def test_stereo_is_downmixed_as_libswresample_does_for_float(
    make_tone: Tone, write_soundfile: MediaWriter
) -> None:
    left, right = make_tone(2.0, 16000, 440.0, 0.3), make_tone(2.0, 16000, 660.0, 0.2)
    path = write_soundfile("stereo.wav", np.stack([left, right]), 16000, subtype="FLOAT")
    decoded = load_speech(path)
    # (L + R) / sqrt(2): libswresample's stereo -> mono matrix, unnormalised for float output.
    np.testing.assert_allclose(decoded.samples, (left + right) / np.sqrt(2), rtol=0, atol=1e-6)


def test_whispers_ffmpeg_cli_would_downmix_stereo_to_the_mean(make_tone: Tone) -> None:
    """The measured fact behind decode's docstring: libswresample's s16 output (what Whisper's
    ``ffmpeg -f s16le -ac 1`` writes) normalises the matrix to (L + R) / 2; float output does not."""
    av = pytest.importorskip("av")
    left, right = make_tone(1.0, 16000, 440.0, 0.3), make_tone(1.0, 16000, 660.0, 0.2)
    results = {}
    for fmt in ("s16", "flt"):
        frame = av.AudioFrame.from_ndarray(np.stack([left, right]), format="fltp", layout="stereo")
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format=fmt, layout="mono", rate=16000)
        out = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
        samples = np.concatenate(out).astype(np.float64)
        results[fmt] = samples / 32768 if fmt == "s16" else samples
    n = min(len(results["s16"]), len(left))
    np.testing.assert_allclose(results["s16"][:n], ((left + right) / 2)[:n], atol=1e-4)
    np.testing.assert_allclose(results["flt"][:n], ((left + right) / np.sqrt(2))[:n], atol=1e-6)


@pytest.mark.parametrize(("name", "codec"), [("stereo.mp3", "mp3"), ("stereo.mp4", "aac")])
def test_planar_stereo_tracks_decode_finite_when_asked_for_mono(
    name: str, codec: str, make_tone: Tone, write_av: MediaWriter
) -> None:
    """decord 0.6 garbles planar multichannel tracks unless asked for mono; asked for mono, it is fine."""
    left, right = make_tone(2.0, 44100, 440.0, 0.3), make_tone(2.0, 44100, 660.0, 0.2)
    decoded = load_speech(write_av(name, np.stack([left, right]), 44100, codec=codec))
    assert np.isfinite(decoded.samples).all() and np.abs(decoded.samples).max() < 1.0
    mixed_rms = np.sqrt((0.3**2 + 0.2**2) / 2 / 2)  # RMS of (L + R) / sqrt(2)
    assert abs(_rms(decoded.samples[4000:-4000]) - mixed_rms) < 0.02


def test_audio_past_30_seconds_keeps_its_first_window(write_soundfile: MediaWriter) -> None:
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(31 * 16000)).astype(np.float32)
    decoded = load_speech(write_soundfile("long.wav", audio, 16000, subtype="FLOAT"))
    assert decoded.truncated and decoded.duration == 31.0
    np.testing.assert_array_equal(decoded.samples, audio[:480_000])


def test_bad_files_are_input_errors_naming_the_file(
    tmp_path: Path, make_tone: Tone, write_soundfile: MediaWriter, write_av: MediaWriter
) -> None:
    from PIL import Image

    empty = tmp_path / "empty.wav"
    empty.touch()
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC but then nothing sensible" * 50)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(write_soundfile("whole.wav", make_tone(1.0, 16000)).read_bytes()[:40])
    image = tmp_path / "picture.wav"
    Image.new("RGB", (16, 16)).save(image, format="PNG")
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    nan = write_soundfile("nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    no_samples = write_soundfile("no-samples.wav", np.zeros(0, np.float32), 16000)
    silent_video = write_av("silent.mp4", None, video_seconds=1.0)
    cases = [
        (tmp_path / "missing.wav", "speech file not found"),
        (tmp_path, "speech input is not a file"),
        (empty, "speech file is empty"),
        (text, "speech does not accept .txt"),
        (corrupt, "speech file cannot be decoded"),
        (truncated, "speech file cannot be decoded"),
        (image, "speech file has no audio stream"),
        (silent_video, "speech file has no audio stream"),
        (nan, "speech file decodes to non-finite samples"),
        (no_samples, "speech file cannot be decoded"),
    ]
    for path, message in cases:
        with pytest.raises(anymodal.InputError, match=message) as raised:
            load_speech(path)
        assert str(path) in raised.value.message, raised.value.message
        assert raised.value.hint, f"no hint for {path.name}"
        assert "\n" not in str(raised.value)


def test_too_long_audio_is_refused(
    monkeypatch: pytest.MonkeyPatch, make_tone: Tone, write_soundfile: MediaWriter
) -> None:
    path = write_soundfile("two-seconds.wav", make_tone(2.0, 16000), 16000)
    monkeypatch.setattr(decode, "MAX_SECONDS", 1.5)
    with pytest.raises(anymodal.InputError, match=r"lasts 2 s, the limit is 1\.5 s") as raised:
        load_speech(path)
    assert "two-seconds.wav" in str(raised.value) and "first 30 s" in str(raised.value)


def test_a_large_file_is_measured_at_a_low_rate_before_decoding(
    monkeypatch: pytest.MonkeyPatch, make_tone: Tone, write_soundfile: MediaWriter
) -> None:
    # An ogg declares no length: decord measures it. (A wav or flac is measured from its header.)
    path = write_soundfile("two-seconds.ogg", make_tone(2.0, 16000), 16000, subtype="VORBIS")
    rates: list[int] = []
    original = decode._decode

    def recording(file: Path, rate: int, head: bytes | None = None) -> Any:
        rates.append(rate)
        return original(file, rate, head)

    monkeypatch.setattr(decode, "_decode", recording)
    monkeypatch.setattr(decode, "PROBE_ABOVE_BYTES", 0)
    assert abs(load_speech(path).duration - 2.0) < 0.05 and rates == [decode.PROBE_RATE, decode.SAMPLE_RATE]
    rates.clear()
    monkeypatch.setattr(decode, "MAX_SECONDS", 1.0)
    with pytest.raises(anymodal.InputError, match="too long"):
        load_speech(path)
    assert rates == [decode.PROBE_RATE]  # refused before the full-rate decode


def test_a_too_long_wav_is_refused_from_its_header_before_any_decode(
    monkeypatch: pytest.MonkeyPatch, make_tone: Tone, write_soundfile: MediaWriter
) -> None:
    path = write_soundfile("two-seconds.wav", make_tone(2.0, 16000), 16000)
    decodes: list[int] = []
    monkeypatch.setattr(decode, "_decode", lambda *args: decodes.append(1))
    monkeypatch.setattr(decode, "MAX_SECONDS", 1.0)
    with pytest.raises(anymodal.InputError, match=r"lasts 2 s, the limit is 1 s"):
        load_speech(path)
    assert decodes == []


def test_the_plugin_lists_the_kinds_decode_reads() -> None:
    assert plugin.FILE_KINDS == decode.FILE_KINDS
    assert {f".{name.split('.')[1]}" for name, *_ in FORMATS} == set(decode.FILE_KINDS)


def test_samples_are_the_same_without_decords_internal_array(
    write_soundfile: MediaWriter, make_tone: Tone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path reads decord's decoded array; a decord without it falls back to slicing."""
    path = write_soundfile("tone.wav", make_tone(31.0, 16000)[None], 16000)
    fast = load_speech(path).samples

    class WithoutArray:
        def __init__(self, reader: Any) -> None:
            self.reader, self.shape = reader, reader.shape

        def __getitem__(self, index: slice) -> Any:
            return self.reader[index]

    decode_file = decode._decode
    monkeypatch.setattr(decode, "_decode", lambda file, rate: WithoutArray(decode_file(file, rate)))
    slow = load_speech(path).samples
    assert fast.shape == (decode.WINDOW_SAMPLES,) and np.array_equal(fast, slow)
