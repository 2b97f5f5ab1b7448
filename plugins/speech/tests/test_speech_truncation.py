"""A speech file that holds less than its header declares is an InputError saying both lengths, for
every container: wav and flac from their headers, the rest against what decord decodes."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
from anymodal_speech.decode import load_speech

import anymodal

MediaWriter = Callable[..., Path]
Tone = Callable[..., np.ndarray]
HINT = "the file was cut short (an interrupted download or copy); re-export or re-download it"


def truncation_message(path: Path) -> str:
    with pytest.raises(anymodal.InputError) as raised:
        load_speech(path)
    assert raised.value.hint == HINT, raised.value.message
    return raised.value.message


@pytest.fixture
def two_second_wav(write_soundfile: MediaWriter, make_tone: Tone) -> Path:
    path = write_soundfile("two.wav", make_tone(2.0, 16000), 16000, subtype="PCM_16")
    assert path.stat().st_size == 44 + 64000
    return path


@pytest.mark.parametrize(("size", "held"), [(100, "1.75 ms"), (3000, "92.38 ms")])
def test_a_cut_wav_is_truncated(two_second_wav: Path, size: int, held: str) -> None:
    cut = two_second_wav.with_name(f"cut-{size}.wav")
    cut.write_bytes(two_second_wav.read_bytes()[:size])
    assert (
        truncation_message(cut) == f"speech file is truncated: its header says 2.00 s, it holds {held}: {cut}"
    )


def test_a_wav_header_claiming_ten_hours_over_two_seconds(two_second_wav: Path) -> None:
    data = bytearray(two_second_wav.read_bytes())
    data[40:44] = struct.pack("<I", 10 * 3600 * 16000 * 2)
    two_second_wav.write_bytes(bytes(data))
    assert truncation_message(two_second_wav) == (
        f"speech file is truncated: its header says 10.00 h, it holds 2.00 s: {two_second_wav}"
    )


def test_a_flac_cut_in_half(write_soundfile: MediaWriter, make_tone: Tone) -> None:
    path = write_soundfile("two.flac", make_tone(2.0, 16000), 16000, subtype="PCM_16")
    cut = path.with_name("half.flac")
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert (
        truncation_message(cut)
        == f"speech file is truncated: its header says 2.00 s, it holds 768.00 ms: {cut}"
    )


@pytest.mark.parametrize(
    ("name", "codec", "rate"), [("two.ogg", None, 16000), ("two.opus", "libopus", 48000)]
)
def test_an_ogg_or_opus_without_its_last_page(
    name: str,
    codec: str | None,
    rate: int,
    write_soundfile: MediaWriter,
    write_av: MediaWriter,
    make_tone: Tone,
) -> None:
    audio = make_tone(2.0, rate)
    path = (
        write_soundfile(name, audio, rate, subtype="VORBIS")
        if codec is None
        else write_av(name, audio[None], rate, codec=codec)
    )
    load_speech(path)
    cut = path.with_name(f"cut-{name}")
    cut.write_bytes(path.read_bytes()[:-10])
    assert (
        truncation_message(cut)
        == f"speech file is truncated: its Ogg stream stops without its end-of-stream page: {cut}"
    )


@pytest.mark.parametrize(
    ("name", "codec"), [("two.mp3", "libmp3lame"), ("two.mkv", "aac"), ("two.webm", "libopus")]
)
def test_a_decord_kind_cut_in_half(name: str, codec: str, write_av: MediaWriter, make_tone: Tone) -> None:
    rate = 48000 if codec == "libopus" else 44100
    path = write_av(name, make_tone(2.0, rate)[None], rate, codec=codec)
    whole = load_speech(path)
    cut = path.with_name(f"half-{name}")
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = truncation_message(cut)
    declared = (
        anymodal.container_audio_seconds(path) if codec != "libmp3lame" else soundfile.info(path).duration
    )
    assert declared is not None and abs(declared - whole.duration) < 0.1
    prefix = f"speech file is truncated: its header says {anymodal.format_duration(declared)}, it holds "
    assert message.startswith(prefix) and message.endswith(f" ms: {cut}"), message


def test_an_mp4_family_file_cut_in_half(tmp_path: Path, make_tone: Tone) -> None:
    av = pytest.importorskip("av", reason="av (the test extra) writes m4a")
    path = tmp_path / "four.m4a"
    audio = make_tone(4.0, 16000)
    # moov before the samples (as streaming services write them), so a cut file still opens.
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for start in range(0, audio.size, 1024):
            frame = av.AudioFrame.from_ndarray(
                audio[None, start : start + 1024].copy(), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert abs(load_speech(path).duration - 4.0) < 0.2
    cut = tmp_path / "half.m4a"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    declared = anymodal.container_audio_seconds(path)
    assert declared is not None
    assert truncation_message(cut).startswith(
        f"speech file is truncated: its header says {anymodal.format_duration(declared)}, it holds "
    )


def test_a_partial_last_frame_is_forgiven(two_second_wav: Path) -> None:
    cut = two_second_wav.with_name("odd.wav")
    cut.write_bytes(two_second_wav.read_bytes()[:-1])
    assert load_speech(cut).duration == 31999 / 16000
