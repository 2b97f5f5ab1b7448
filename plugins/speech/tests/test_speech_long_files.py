"""A wav or flac longer than Whisper's window is decoded from its head only, bit for bit as decoding
the whole file gives, and reports its full duration; an hour costs what 31 seconds cost."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from anymodal_speech import decode
from anymodal_speech.decode import WINDOW_SAMPLES, load_speech

from anymodal.testing.media import write_long_wav

MediaWriter = Callable[..., Path]


def whole_file_window(path: Path) -> np.ndarray:
    """The first 30 s at 16 kHz as decord gives them from the whole file (the loader's old path)."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    reader = decord.AudioReader(str(path), sample_rate=16000, mono=True)
    return np.asarray(reader[0:WINDOW_SAMPLES].asnumpy()).reshape(-1)


@pytest.fixture
def heads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size in bytes of every head decord is given (None: the whole file)."""
    sizes: list[int] = []
    original = decode._decode

    def recording(file: Path, rate: int, head: bytes | None = None) -> Any:
        sizes.append(len(head) if head is not None else -1)
        return original(file, rate, head)

    monkeypatch.setattr(decode, "_decode", recording)
    return sizes


CASES = [
    ("stereo44k.wav", 44100, 2, "PCM_16", 45.0),
    ("mono22k.flac", 22050, 1, "PCM_24", 50.0),
    ("stereo48k.flac", 48000, 2, "PCM_16", 60.0),
    ("mono16k.wav", 16000, 1, "FLOAT", 35.0),
    ("quiet-start.flac", 16000, 1, "PCM_16", 120.0),
]


@pytest.mark.parametrize(("name", "rate", "channels", "subtype", "seconds"), CASES, ids=[c[0] for c in CASES])
def test_the_head_decodes_as_the_whole_file(
    write_soundfile: MediaWriter,
    heads: list[int],
    name: str,
    rate: int,
    channels: int,
    subtype: str,
    seconds: float,
) -> None:
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((channels, round(seconds * rate)))).astype(np.float32)
    if name.startswith("quiet"):
        audio[:, : 60 * rate] *= 1e-3  # compresses well: the first guess at the head falls short
    path = write_soundfile(name, audio, rate, subtype=subtype)
    decoded = load_speech(path)
    assert decoded.duration == seconds and decoded.truncated
    assert np.array_equal(decoded.samples, whole_file_window(path))
    assert all(size > 0 for size in heads), "decord never sees the whole file"
    assert heads[-1] < path.stat().st_size * 0.9


def test_a_wav_head_is_the_window_and_a_second(write_soundfile: MediaWriter, heads: list[int]) -> None:
    path = write_soundfile("minute.wav", np.zeros(60 * 16000, np.float32), 16000, subtype="PCM_16")
    load_speech(path)
    assert heads == [44 + 31 * 16000 * 2]


def test_a_file_within_the_window_and_a_second_is_decoded_whole(
    write_soundfile: MediaWriter, heads: list[int]
) -> None:
    path = write_soundfile("short.wav", np.zeros(31 * 16000, np.float32), 16000, subtype="PCM_16")
    assert load_speech(path).duration == 31.0
    assert heads == [-1]


MEASURE = """
import json, resource, sys, time
from pathlib import Path
import torch, whisper, decord, soundfile
from anymodal_speech import plugin
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
decoded = plugin.load(Path(sys.argv[1]))
mel = plugin.preprocess(decoded)
seconds = time.perf_counter() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"seconds": seconds, "grown_mib": grown / 1024, "duration": decoded.duration,
                  "shape": list(mel.shape)}))
"""


@pytest.mark.slow
def test_an_hour_long_wav_and_flac_cost_the_window(tmp_path: Path) -> None:
    hour = write_long_wav(tmp_path / "hour.wav", 3600)
    flac = tmp_path / "hour.flac"
    with soundfile.SoundFile(hour) as source, soundfile.SoundFile(flac, "w", 16000, 1, "PCM_16") as target:
        for block in source.blocks(blocksize=60 * 16000, dtype="int16"):
            target.write(block)
    for path in (hour, flac):
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        assert measured["duration"] == 3600.0 and measured["shape"] == [80, 3000], measured
        # Decoding the hour with decord held 1.3 GiB more; the window's 30 s are 1.8 MiB.
        assert measured["grown_mib"] < 256, measured
        assert measured["seconds"] < 10, measured
    assert np.array_equal(load_speech(flac).samples, whole_file_window(hour))
