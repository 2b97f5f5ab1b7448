"""Damaged files of every kind the plugin reads (random bytes, cuts, bit flips, lying header fields)
give an anymodal error naming the file, quickly and in bounded memory: anymodal.testing.fuzz."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch  # noqa: F401  (imported before any fuzz deadline starts: an import inside one counts)
from anymodal_audio import plugin

import anymodal
from anymodal.testing import registered_modality
from anymodal.testing.fuzz import Damage, check_damaged_file, fuzz_modality

Tone = Callable[..., np.ndarray]

# Examples per kind: the file takes 4 s on 2 idle cores, 10-15 s on busy ones (an mp3 case costs the
# most: libmpg123 resynchronises through a damaged stream).
SOUNDFILE_CASES = [
    ("wav", "PCM_16", 100),
    ("flac", "PCM_16", 100),
    ("ogg", "VORBIS", 100),
    ("mp3", "MPEG_LAYER_III", 30),
]
CONTAINER_CASES = [("mp4", "aac", 40), ("mkv", "aac", 40)]


@pytest.fixture(scope="module")
def spec() -> anymodal.ModalitySpec:
    return registered_modality(plugin, "audio")


@pytest.mark.parametrize(
    ("kind", "subtype", "examples"), SOUNDFILE_CASES, ids=[c[0] for c in SOUNDFILE_CASES]
)
def test_damaged_soundfile_kinds(
    spec: anymodal.ModalitySpec, tmp_path: Path, tone: Tone, kind: str, subtype: str, examples: int
) -> None:
    path = tmp_path / f"valid.{kind}"
    fmt = "MP3" if kind == "mp3" else None
    soundfile.write(path, tone(2.5, 16000), 16000, format=fmt, subtype=subtype)
    fuzz_modality(spec, path, examples=examples)


@pytest.mark.parametrize(("kind", "codec", "examples"), CONTAINER_CASES, ids=[c[0] for c in CONTAINER_CASES])
def test_damaged_container_sound_tracks(
    spec: anymodal.ModalitySpec,
    write_av: Callable[..., Path],
    tone: Tone,
    kind: str,
    codec: str,
    examples: int,
) -> None:
    path = write_av(f"valid.{kind}", tone(2.5, 16000)[None], 16000, codec=codec)
    fuzz_modality(spec, path, examples=examples)


def test_a_flac_declaring_zero_hertz_never_reaches_decord(
    spec: anymodal.ModalitySpec, tmp_path: Path, tone: Tone
) -> None:
    """Found by fuzzing the speech plugin: decord 0.6 divides by the stream's rate, so a FLAC
    declaring 0 Hz killed the process with SIGFPE. Named .mp4, it takes this plugin's decord path."""
    path = tmp_path / "valid.flac"
    soundfile.write(path, tone(2.5, 16000), 16000)
    valid = path.read_bytes()
    damaged = valid[:18] + (0xFF).to_bytes(4, "big") + valid[22:]  # STREAMINFO's rate field: 0 Hz
    result = check_damaged_file(spec, Damage(damaged, "FLAC at 0 Hz named .mp4"), ".mp4", tmp_path)
    assert isinstance(result, anymodal.InputError)
    assert result.message.startswith("audio file declares a sample rate of 0 Hz: ")


def test_an_absurd_sample_rate_is_refused_before_any_resampling(spec, tmp_path):
    valid = tmp_path / "tone.wav"
    soundfile.write(valid, np.zeros(44100, dtype=np.float32), 44100, subtype="PCM_16")
    data = bytearray(valid.read_bytes())
    data[26:28] = (1).to_bytes(2, "big")  # the sample rate's high half: 16.8 MHz (found by fuzzing)
    result = check_damaged_file(spec, Damage(bytes(data), "sample rate 16.8 MHz"), ".wav", tmp_path)
    assert isinstance(result, anymodal.InputError)
    assert "declares an invalid sample rate 16821316 Hz" in result.message  # 44100 + 2**24
