"""The loader reads only the three clips ImageBind samples, and gets bit for bit what reading the
whole file gives; an hour-long file costs three clips in time and memory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from anymodal_audio import plugin
from anymodal_audio.decode import load_audio, open_audio
from anymodal_audio.preprocessing import clip_slices, clip_to_melspec, preprocess
from anymodal_audio.resample import resample
from anymodal_audio.source import AudioFile

from anymodal.testing.media import write_long_wav

Tone = Callable[..., np.ndarray]


def whole_file_melspecs(path: Path) -> torch.Tensor:
    """ImageBind's steps on the whole file, as the loader did before it read clips: decode it all,
    resample it all, slice the three clips, make their log-mels."""
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    waveform = resample(torch.from_numpy(np.ascontiguousarray(samples.T)), rate, 16000)
    clips = [clip_to_melspec(waveform[:, span]) for span in clip_slices(waveform.shape[1], 16000)]
    return torch.stack(clips)


def noise(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((round(seconds * rate), channels))).astype(np.float32)


@pytest.fixture
def frames_read(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every ``(start, stop)`` an AudioFile is asked to decode."""
    reads: list[tuple[int, int]] = []
    original = AudioFile.read

    def counting(self: AudioFile, start: int, stop: int) -> np.ndarray:
        reads.append((start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(AudioFile, "read", counting)
    return reads


CASES = [
    ("mono16k.wav", 16000, 1, 7.3, "PCM_16"),
    ("stereo44k.wav", 44100, 2, 9.0, "PCM_16"),
    ("mono22k.flac", 22050, 1, 12.5, "PCM_24"),
    ("stereo48k.flac", 48000, 2, 5.0, "PCM_16"),
    ("mono44k.ogg", 44100, 1, 6.0, "VORBIS"),
    ("short8k.wav", 8000, 1, 1.2, "PCM_16"),
    ("odd-rate.wav", 44056, 1, 4.0, "PCM_16"),  # 5507/2000: the sparse-kernel resampler
]


@pytest.mark.parametrize(("name", "rate", "channels", "seconds", "subtype"), CASES, ids=[c[0] for c in CASES])
def test_clips_read_alone_equal_the_whole_file_bit_for_bit(
    tmp_path: Path, name: str, rate: int, channels: int, seconds: float, subtype: str
) -> None:
    path = tmp_path / name
    soundfile.write(path, noise(seconds, rate, channels), rate, subtype=subtype)
    spec_output = plugin.preprocess(plugin.load(path))
    assert isinstance(plugin.load(path), AudioFile)
    assert torch.equal(spec_output, whole_file_melspecs(path))
    assert torch.equal(spec_output, preprocess(load_audio(path)))


def test_a_minute_at_16k_reads_exactly_the_three_clips(
    tmp_path: Path, frames_read: list[tuple[int, int]]
) -> None:
    path = tmp_path / "minute.wav"
    soundfile.write(path, noise(60.0, 16000, 1), 16000, subtype="PCM_16")
    preprocess(open_audio(path))
    # Clips start at 0, (60 - 2) / 2 and 60 - 2 seconds: no resampling, so no margin.
    assert frames_read == [(0, 32000), (464000, 496000), (928000, 960000)]


def test_a_minute_at_44k_reads_the_clips_and_the_filters_reach(
    tmp_path: Path, frames_read: list[tuple[int, int]]
) -> None:
    path = tmp_path / "minute.wav"
    soundfile.write(path, noise(60.0, 44100, 1), 44100, subtype="PCM_16")
    preprocess(open_audio(path))
    assert len(frames_read) == 3
    total = sum(stop - start for start, stop in frames_read)
    # Each 2 s clip is computed in whole chunks of about 1 s of output plus the filter's reach.
    assert 3 * 2 * 44100 < total < 3 * 4 * 44100, total


def test_a_short_file_is_read_once_for_its_three_identical_clips(
    tmp_path: Path, frames_read: list[tuple[int, int]]
) -> None:
    path = tmp_path / "short.wav"
    soundfile.write(path, noise(1.5, 16000, 1), 16000)
    preprocess(open_audio(path))
    assert frames_read == [(0, 24000)]


def test_a_window_that_no_longer_decodes_is_an_input_error(tmp_path: Path, tone: Tone) -> None:
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(2.0, 16000), 16000)
    source = open_audio(path)
    path.write_bytes(path.read_bytes()[:1000])  # cut after it was checked
    with pytest.raises(Exception, match="audio file cannot be decoded") as raised:
        preprocess(source)
    assert str(path) in str(raised.value)


MEASURE = """
import json, resource, sys, time
from pathlib import Path
import torch, soundfile
from anymodal_audio import plugin
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
melspecs = plugin.preprocess(plugin.load(Path(sys.argv[1])))
seconds = time.perf_counter() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"seconds": seconds, "grown_mib": grown / 1024, "shape": list(melspecs.shape)}))
"""


def measure_in_a_fresh_process(path: Path) -> dict[str, float]:
    """Loader and preprocessor on ``path`` in a new interpreter: seconds taken, and how far the
    process's peak resident memory rose past what importing torch and the plugin cost."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True, timeout=300
    )
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


@pytest.mark.slow
def test_an_hour_long_wav_costs_three_clips(tmp_path: Path, frames_read: list[tuple[int, int]]) -> None:
    hour = write_long_wav(tmp_path / "hour.wav", 3600)
    assert hour.stat().st_size == 44 + 3600 * 16000 * 2  # 115 MB
    measured = measure_in_a_fresh_process(hour)
    assert measured["shape"] == [3, 1, 128, 204]
    assert measured["grown_mib"] < 256, measured  # the whole file as float32 would be 220 MiB more
    assert measured["seconds"] < 10, measured
    started = time.perf_counter()
    preprocess(open_audio(hour))
    assert time.perf_counter() - started < 5
    assert frames_read == [(0, 32000), (28784000, 28816000), (57568000, 57600000)]


@pytest.mark.slow
def test_a_minute_read_by_clips_equals_the_whole_file(tmp_path: Path) -> None:
    minute = write_long_wav(tmp_path / "minute.wav", 60)
    assert torch.equal(preprocess(open_audio(minute)), whole_file_melspecs(minute))
    resampled = tmp_path / "minute44k.wav"
    soundfile.write(resampled, noise(60.0, 44100, 2), 44100, subtype="PCM_16")
    assert torch.equal(preprocess(open_audio(resampled)), whole_file_melspecs(resampled))
