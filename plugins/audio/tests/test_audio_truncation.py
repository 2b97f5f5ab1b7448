"""A file that holds less than its header declares is an InputError saying both lengths, for every
container the plugin reads; a partial last frame is forgiven, and nothing is allocated from a lie.

The header readers and duration formatting themselves are core's (anymodal.preprocess.audio_headers,
tested in tests/preprocess/test_audio_headers.py); these tests check the loader uses them."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
from anymodal_audio.decode import load_audio, open_audio

import anymodal
from anymodal import format_duration

Tone = Callable[..., np.ndarray]
HINT = "the file was cut short (an interrupted download or copy); re-export or re-download it"


@pytest.fixture
def two_second_wav(tmp_path: Path, tone: Tone) -> Path:
    """16 kHz mono 16-bit: a 44-byte header, then 64,000 bytes of samples."""
    path = tmp_path / "two.wav"
    soundfile.write(path, tone(2.0, 16000), 16000, subtype="PCM_16")
    assert path.stat().st_size == 44 + 64000
    return path


def truncation_message(path: Path) -> str:
    with pytest.raises(anymodal.InputError) as raised:
        open_audio(path)
    assert raised.value.hint == HINT
    return raised.value.message


@pytest.mark.parametrize(("size", "held"), [(100, "1.75 ms"), (3000, "92.38 ms")])
def test_a_cut_wav_is_truncated(tmp_path: Path, two_second_wav: Path, size: int, held: str) -> None:
    # 100 bytes: 56 bytes of samples, 28 frames. 3,000 bytes: 1,478 frames. libsndfile opens both
    # without a word, as 28 and 1,478 frames.
    cut = tmp_path / "cut.wav"
    cut.write_bytes(two_second_wav.read_bytes()[:size])
    assert soundfile.info(cut).frames == (size - 44) // 2
    assert (
        truncation_message(cut) == f"audio file is truncated: its header says 2.00 s, it holds {held}: {cut}"
    )


def test_a_wav_header_claiming_ten_hours_over_two_seconds(two_second_wav: Path) -> None:
    data = bytearray(two_second_wav.read_bytes())
    data[40:44] = struct.pack("<I", 10 * 3600 * 16000 * 2)
    data[4:8] = struct.pack("<I", 36 + 10 * 3600 * 16000 * 2)
    two_second_wav.write_bytes(bytes(data))
    assert soundfile.info(two_second_wav).frames == 32000, "libsndfile clamps to the bytes present"
    assert truncation_message(two_second_wav) == (
        f"audio file is truncated: its header says 10.00 h, it holds 2.00 s: {two_second_wav}"
    )


def test_a_lost_whole_frame_says_enough_decimals(tmp_path: Path, two_second_wav: Path) -> None:
    cut = tmp_path / "short.wav"
    cut.write_bytes(two_second_wav.read_bytes()[:-2])
    assert (
        truncation_message(cut)
        == f"audio file is truncated: its header says 2.0000 s, it holds 1.9999 s: {cut}"
    )


def test_a_partial_last_frame_is_forgiven(tmp_path: Path, two_second_wav: Path) -> None:
    cut = tmp_path / "odd.wav"
    cut.write_bytes(two_second_wav.read_bytes()[:-1])  # half of the last 2-byte frame
    assert open_audio(cut).frames == 31999


def test_a_streamed_wav_with_an_open_size_is_read_to_its_end(two_second_wav: Path) -> None:
    data = bytearray(two_second_wav.read_bytes())
    data[40:44] = b"\xff\xff\xff\xff"  # what a writer that cannot seek back leaves
    two_second_wav.write_bytes(bytes(data))
    assert open_audio(two_second_wav).frames == 32000


def test_a_flac_cut_in_half(tmp_path: Path, tone: Tone) -> None:
    path = tmp_path / "two.flac"
    soundfile.write(path, tone(2.0, 16000), 16000, subtype="PCM_16")
    cut = tmp_path / "half.flac"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    # The STREAMINFO total still says 32,000; three whole 4096-sample FLAC frames decode.
    assert soundfile.info(cut).frames == 32000
    assert (
        truncation_message(cut)
        == f"audio file is truncated: its header says 2.00 s, it holds 768.00 ms: {cut}"
    )


def set_flac_total(path: Path, total: int) -> None:
    """Overwrite the 36-bit total-samples field of a FLAC's STREAMINFO (bytes 21 to 25)."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "STREAMINFO comes first"
    field = int.from_bytes(data[18:26], "big")
    field = (field & ~((1 << 36) - 1)) | total
    data[18:26] = field.to_bytes(8, "big")
    path.write_bytes(bytes(data))


def test_a_flac_claiming_ten_hours_is_truncated_without_allocating_ten_hours(
    tmp_path: Path, tone: Tone
) -> None:
    path = tmp_path / "liar.flac"
    soundfile.write(path, tone(2.0, 16000), 16000, subtype="PCM_16")
    set_flac_total(path, 10 * 3600 * 16000)
    tracemalloc.start()
    try:
        message = truncation_message(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message == f"audio file is truncated: its header says 10.00 h, it holds 2.00 s: {path}"
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MiB allocated; ten hours of float32 would be 2.1 GiB"


def test_a_flac_with_an_unknown_total_is_counted(tmp_path: Path, tone: Tone) -> None:
    path = tmp_path / "unknown.flac"
    soundfile.write(path, tone(2.0, 16000), 16000, subtype="PCM_16")
    set_flac_total(path, 0)  # "unknown", which libsndfile reports as INT64_MAX frames
    assert open_audio(path).frames == 32000
    assert load_audio(path).samples.shape == (1, 32000)


def test_a_flac_missing_part_of_its_last_frame_is_forgiven(tmp_path: Path, tone: Tone) -> None:
    path = tmp_path / "two.flac"
    soundfile.write(path, tone(2.0, 16000), 16000, subtype="PCM_16")
    cut = tmp_path / "nearly.flac"
    cut.write_bytes(path.read_bytes()[:-10])
    # The last FLAC frame (samples 28672-32000) no longer decodes: one codec frame is forgiven.
    assert open_audio(cut).frames == 7 * 4096
    assert anymodal.CODEC_FRAME_SAMPLES["FLAC"] >= 32000 - 7 * 4096


def test_an_ogg_without_its_last_page(tmp_path: Path, tone: Tone) -> None:
    path = tmp_path / "two.ogg"
    soundfile.write(path, tone(2.0, 16000), 16000, subtype="VORBIS")
    open_audio(path)  # whole, it opens
    for size in (path.stat().st_size - 10, path.stat().st_size // 2):
        cut = tmp_path / f"cut-{size}.ogg"
        cut.write_bytes(path.read_bytes()[:size])
        assert truncation_message(cut) == (
            f"audio file is truncated: its Ogg stream stops without its end-of-stream page: {cut}"
        )


def test_an_mp3_cut_in_half(tmp_path: Path, tone: Tone) -> None:
    path = tmp_path / "two.mp3"
    soundfile.write(path, tone(2.0, 16000), 16000, format="MP3", subtype="MPEG_LAYER_III")
    assert anymodal.mp3_declares_length(path), "libsndfile writes a Xing/Info header"
    assert open_audio(path).frames == 32000
    cut = tmp_path / "half.mp3"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    held = soundfile.read(cut, dtype="float32")[0].shape[0]
    assert 8000 < held < 24000
    assert (
        truncation_message(cut)
        == f"audio file is truncated: its header says 2.00 s, it holds {format_duration(held / 16000)}: {cut}"
    )


def test_an_mp3_without_a_length_header_is_counted_not_refused(
    write_av: Callable[..., Path], tone: Tone, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without Xing/Info/VBRI, libsndfile's length is an estimate from the file size (here one MP3
    # frame too long): no truncation can be claimed, the frames that decode are the length.
    path = write_av("estimated.mp3", tone(2.0, 16000)[None], 16000, codec="libmp3lame")
    data = path.read_bytes()
    tag = data.find(b"Info") if b"Info" in data[:2000] else data.find(b"Xing")
    assert 0 < tag < 2000
    path.write_bytes(data[:tag] + b"Junk" + data[tag + 4 :])
    assert not anymodal.mp3_declares_length(path)
    decoded = soundfile.read(path, dtype="float32")[0].shape[0]
    assert open_audio(path).frames == decoded


def test_a_matroska_cut_in_half(write_av: Callable[..., Path], tone: Tone) -> None:
    path = write_av("two.mkv", tone(2.0, 16000)[None], 16000, codec="aac")
    declared = anymodal.container_audio_seconds(path)
    assert declared is not None and abs(declared - 2.0) < 0.1
    open_audio(path)
    cut = path.with_name("half.mkv")
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = truncation_message(cut)
    assert message.startswith(
        f"audio file is truncated: its header says {format_duration(declared)}, it holds "
    )
    assert message.endswith(f" ms: {cut}")


def write_faststart_m4a(path: Path, audio: np.ndarray, rate: int) -> Path:
    """An AAC .m4a whose ``moov`` (with the track's duration) precedes the samples, as streaming
    services write them, so a cut file still opens."""
    av = pytest.importorskip("av", reason="av (the test extra) writes m4a")
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        for start in range(0, audio.shape[0], 1024):
            frame = av.AudioFrame.from_ndarray(
                audio[None, start : start + 1024].copy(), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_an_mp4_family_file_cut_in_half(tmp_path: Path, tone: Tone, monkeypatch: pytest.MonkeyPatch) -> None:
    from anymodal_audio import decode

    monkeypatch.setattr(decode, "CONTAINER_KINDS", (*decode.CONTAINER_KINDS, ".m4a"))
    path = write_faststart_m4a(tmp_path / "two.m4a", tone(4.0, 16000), 16000)
    declared = anymodal.container_audio_seconds(path)
    assert declared is not None and abs(declared - 4.0) < 0.2
    open_audio(path)
    cut = tmp_path / "half.m4a"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = truncation_message(cut)
    assert message.startswith(
        f"audio file is truncated: its header says {format_duration(declared)}, it holds "
    )


def test_an_rf64_cut_in_half(tmp_path: Path, tone: Tone) -> None:
    # RF64 keeps the real sizes in its ds64 chunk (the data chunk's own size is all ones).
    path = tmp_path / "two.wav"
    soundfile.write(path, tone(2.0, 16000), 16000, format="RF64", subtype="PCM_16")
    assert path.read_bytes()[:4] == b"RF64" and open_audio(path).frames == 32000
    cut = tmp_path / "half.wav"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    held = (path.stat().st_size // 2 - 104) // 2 / 16000  # a 104-byte header before the samples
    assert truncation_message(cut) == (
        f"audio file is truncated: its header says 2.00 s, it holds {format_duration(held)}: {cut}"
    )
