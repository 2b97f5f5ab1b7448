"""Damaged speech files of every kind the test environment writes (random bytes, cuts, bit flips,
lying header fields) give an anymodal error naming the file, quickly and in bounded memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (imported before any fuzz deadline starts: an import inside one counts)
import whisper  # noqa: F401
from anymodal_speech import plugin

import anymodal
from anymodal.testing import registered_modality
from anymodal.testing.fuzz import Damage, check_damaged_file, fuzz_modality

MediaWriter = Callable[..., Path]
Tone = Callable[..., np.ndarray]

# Examples per kind: the file takes 5 s on 2 idle cores, 10-15 s on busy ones.
SOUNDFILE_CASES = [("wav", "PCM_16", 150), ("flac", "PCM_16", 150), ("ogg", "VORBIS", 120)]
AV_CASES = [("mp3", "libmp3lame", 40), ("m4a", "aac", 60), ("opus", "libopus", 60), ("webm", "libopus", 40)]


@pytest.fixture(scope="module")
def spec() -> anymodal.ModalitySpec:
    return registered_modality(plugin, "speech")


@pytest.mark.parametrize(
    ("kind", "subtype", "examples"), SOUNDFILE_CASES, ids=[c[0] for c in SOUNDFILE_CASES]
)
def test_damaged_soundfile_kinds(
    spec: anymodal.ModalitySpec,
    write_soundfile: MediaWriter,
    make_tone: Tone,
    kind: str,
    subtype: str,
    examples: int,
) -> None:
    path = write_soundfile(f"valid.{kind}", make_tone(2.5, 16000), 16000, subtype=subtype)
    fuzz_modality(spec, path, examples=examples)


@pytest.mark.parametrize(("kind", "codec", "examples"), AV_CASES, ids=[c[0] for c in AV_CASES])
def test_damaged_av_kinds(
    spec: anymodal.ModalitySpec, write_av: MediaWriter, make_tone: Tone, kind: str, codec: str, examples: int
) -> None:
    rate = 48000 if codec == "libopus" else 16000
    path = write_av(f"valid.{kind}", make_tone(2.5, rate)[None], rate, codec=codec)
    fuzz_modality(spec, path, examples=examples)


def test_a_flac_declaring_zero_hertz_never_reaches_decord(
    spec: anymodal.ModalitySpec, write_soundfile: MediaWriter, make_tone: Tone, tmp_path: Path
) -> None:
    """Found by the fuzzer: decord 0.6 divides by the stream's rate, so this file killed the process
    with SIGFPE. libsndfile refuses it, so it took decord's path."""
    valid = write_soundfile("valid.flac", make_tone(2.5, 16000), 16000).read_bytes()
    damaged = valid[:18] + (0xFF).to_bytes(4, "big") + valid[22:]  # STREAMINFO's rate field: 0 Hz
    result = check_damaged_file(
        spec, Damage(damaged, "4-byte field at 18 set to 0xff (big-endian)"), ".flac", tmp_path
    )
    assert isinstance(result, anymodal.InputError)
    assert result.message.startswith("speech file declares a sample rate of 0 Hz: ")
