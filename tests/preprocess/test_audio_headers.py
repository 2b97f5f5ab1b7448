"""Core's audio header readers (anymodal.preprocess.audio_headers) read the exact length each container
declares, say nothing about files they do not understand, and word the truncation error as both the
audio and the speech plugin print it.

Files are written here: wav, RF64, ISO boxes and Matroska elements byte by byte with the standard
library; flac, ogg and mp3 with soundfile; mp4-family and Matroska files with PyAV (``write_av``).
"""

from __future__ import annotations

import struct
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import anymodal
from anymodal.preprocess import audio_headers as headers

MediaWriter = Callable[..., Path]
HINT = "the file was cut short (an interrupted download or copy); re-export or re-download it"
MODALITIES = ("audio", "speech")


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def truncation_messages(check: Callable[..., object], path: Path) -> dict[str, str]:
    """The message ``check(path, modality=...)`` raises, for each of :data:`MODALITIES`."""
    messages = {}
    for modality in MODALITIES:
        with pytest.raises(anymodal.InputError) as raised:
            check(path, modality=modality)
        assert raised.value.hint == HINT
        messages[modality] = raised.value.message
    return messages


def test_the_public_api_is_this_module() -> None:
    for name in (
        "CODEC_FRAME_SAMPLES",
        "CONTAINER_TOLERANCE_S",
        "WavLayout",
        "check_ogg_complete",
        "checked_wav_layout",
        "container_audio_seconds",
        "flac_sample_rate",
        "format_duration",
        "mp3_declares_length",
        "truncated_audio_error",
    ):
        assert name in anymodal.__all__
        assert getattr(anymodal, name) is getattr(headers, name)
    with pytest.raises(TypeError):
        anymodal.CODEC_FRAME_SAMPLES["FLAC"] = 1  # type: ignore[index]


# --- WAV ------------------------------------------------------------------------------------------


def write_wav(path: Path, seconds: float, rate: int = 16000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(bytes(round(seconds * rate) * channels * width))
    return path


def chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def pcm_fmt(rate: int = 16000, channels: int = 1, width: int = 2, tag: int = 1) -> bytes:
    return chunk(
        b"fmt ",
        struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width, channels * width, 8 * width),
    )


def test_a_wav_declares_its_data_chunk(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "two.wav", 2.0)
    layout = headers.wav_layout(path)
    assert layout == anymodal.WavLayout(
        sample_rate=16000,
        block_align=2,
        byte_rate=32000,
        frame_aligned=True,
        data_offset=44,
        declared_bytes=64000,
        file_size=44 + 64000,
    )
    assert layout.seconds(layout.declared_bytes) == 2.0
    assert layout.present_bytes == 64000 and layout.missing_bytes == 0
    assert anymodal.checked_wav_layout(path, modality="audio") == layout


def test_a_stereo_24_bit_wav(tmp_path: Path) -> None:
    layout = headers.wav_layout(write_wav(tmp_path / "stereo.wav", 1.5, rate=44100, channels=2, width=3))
    assert layout is not None
    assert (layout.block_align, layout.declared_bytes) == (6, 66150 * 6)
    assert layout.seconds(66150 * 6) == 1.5


def test_chunks_before_data_are_skipped_with_their_pad_byte(tmp_path: Path) -> None:
    path = tmp_path / "listed.wav"
    body = b"WAVE" + pcm_fmt() + chunk(b"LIST", b"odd") + chunk(b"data", bytes(32000))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    layout = headers.wav_layout(path)
    assert layout is not None
    assert layout.data_offset == 12 + 24 + 12 + 8 and layout.seconds(layout.declared_bytes or 0) == 1.0


def test_an_rf64_declares_its_size_in_ds64(tmp_path: Path) -> None:
    samples = bytes(64000)
    ds64 = chunk(b"ds64", struct.pack("<QQQI", 0, len(samples), 32000, 0))
    body = b"WAVE" + ds64 + pcm_fmt() + b"data\xff\xff\xff\xff" + samples
    path = tmp_path / "two.wav"
    path.write_bytes(b"RF64\xff\xff\xff\xff" + body)
    layout = headers.wav_layout(path)
    assert layout is not None
    assert (layout.data_offset, layout.declared_bytes) == (12 + 36 + 24 + 8, 64000)
    assert layout.seconds(64000) == 2.0
    cut = tmp_path / "half.wav"
    cut.write_bytes(path.read_bytes()[: 80 + 32000])
    messages = truncation_messages(anymodal.checked_wav_layout, cut)
    assert messages["speech"] == f"speech file is truncated: its header says 2.00 s, it holds 1.00 s: {cut}"


def test_an_adpcm_wav_is_timed_by_its_byte_rate(tmp_path: Path) -> None:
    # IMA ADPCM: 256-byte blocks of many frames each, so the block align is no frame size.
    fmt = chunk(b"fmt ", struct.pack("<HHIIHHHH", 0x0011, 1, 8000, 4055, 256, 4, 2, 505))
    body = b"WAVE" + fmt + chunk(b"data", bytes(2 * 4055))
    path = tmp_path / "adpcm.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    layout = headers.wav_layout(path)
    assert layout is not None and not layout.frame_aligned
    assert layout.seconds(layout.declared_bytes or 0) == 2.0


@pytest.mark.parametrize(
    ("size", "held"), [(100, "1.75 ms"), (3000, "92.38 ms"), (44 + 64000 - 2, "1.9999 s")]
)
def test_a_cut_wav_is_truncated(tmp_path: Path, size: int, held: str) -> None:
    path = write_wav(tmp_path / "two.wav", 2.0)
    path.write_bytes(path.read_bytes()[:size])
    declared = "2.0000 s" if held == "1.9999 s" else "2.00 s"
    assert truncation_messages(anymodal.checked_wav_layout, path) == {
        modality: f"{modality} file is truncated: its header says {declared}, it holds {held}: {path}"
        for modality in MODALITIES
    }


def test_a_partial_last_frame_and_an_open_size_are_not_truncation(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "two.wav", 2.0)
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    layout = anymodal.checked_wav_layout(path, modality="audio")
    assert layout is not None and layout.missing_bytes == 1
    path.write_bytes(data[:40] + b"\xff\xff\xff\xff" + data[44:100])  # as a pipe writer leaves it
    layout = anymodal.checked_wav_layout(path, modality="audio")
    assert layout is not None and layout.declared_bytes is None and layout.missing_bytes == 0


# --- FLAC, Ogg, MP3 (soundfile writes them) -------------------------------------------------------


def id3(size: int = 20) -> bytes:
    """An ID3v2.4 tag of ``size`` bytes of content (its size is 'syncsafe': 7 bits a byte)."""
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + bytes(size)


def test_a_flac_declares_its_sample_rate(tmp_path: Path) -> None:
    soundfile = pytest.importorskip("soundfile")
    path = tmp_path / "two.flac"
    soundfile.write(path, tone(2.0, 44100), 44100, subtype="PCM_16")
    assert soundfile.info(path).frames == 88200
    assert anymodal.flac_sample_rate(path) == 44100
    tagged = tmp_path / "tagged.flac"
    tagged.write_bytes(id3() + path.read_bytes())
    assert anymodal.flac_sample_rate(tagged) == 44100
    data = bytearray(path.read_bytes())
    data[18], data[19], data[20] = 0, 0, data[20] & 0x0F
    path.write_bytes(bytes(data))
    assert anymodal.flac_sample_rate(path) == 0


def test_an_ogg_is_complete_only_with_its_end_of_stream_page(tmp_path: Path) -> None:
    soundfile = pytest.importorskip("soundfile")
    path = tmp_path / "two.ogg"
    soundfile.write(path, tone(2.0, 16000), 16000, subtype="VORBIS")
    assert headers.ogg_is_complete(path) is True
    anymodal.check_ogg_complete(path, modality="audio")
    tagged = tmp_path / "tagged.ogg"
    tagged.write_bytes(path.read_bytes() + b"TAG" + bytes(125))  # bytes after the last page
    assert headers.ogg_is_complete(tagged) is True
    for size in (path.stat().st_size - 10, path.stat().st_size // 2):
        cut = tmp_path / f"cut-{size}.ogg"
        cut.write_bytes(path.read_bytes()[:size])
        assert headers.ogg_is_complete(cut) is False
        stops = "its Ogg stream stops without its end-of-stream page"
        assert truncation_messages(anymodal.check_ogg_complete, cut) == {
            modality: f"{modality} file is truncated: {stops}: {cut}" for modality in MODALITIES
        }


def test_an_mp3_declares_its_length_in_a_xing_or_info_frame(tmp_path: Path) -> None:
    frame = b"\xff\xfb\x90\x64" + bytes(32)
    path = tmp_path / "x.mp3"
    for tag in (b"Xing", b"Info", b"VBRI"):
        path.write_bytes(id3() + frame + tag + bytes(400))
        assert anymodal.mp3_declares_length(path)
    path.write_bytes(id3() + frame + bytes(404))
    assert not anymodal.mp3_declares_length(path)


def test_soundfiles_mp3_declares_its_length(tmp_path: Path) -> None:
    soundfile = pytest.importorskip("soundfile")
    if "MP3" not in soundfile.available_formats():
        pytest.skip("this libsndfile writes no mp3 (it needs 1.1 or later)")
    path = tmp_path / "two.mp3"
    soundfile.write(path, tone(2.0, 16000), 16000, format="MP3", subtype="MPEG_LAYER_III")
    assert anymodal.mp3_declares_length(path)
    assert soundfile.info(path).frames == 32000, "the frame count the Info header declares"
    data = path.read_bytes()
    tag = data.find(b"Info") if b"Info" in data[:2000] else data.find(b"Xing")
    path.write_bytes(data[:tag] + b"Junk" + data[tag + 4 :])
    assert not anymodal.mp3_declares_length(path)


# --- ISO base media (mp4, m4a, mov) ---------------------------------------------------------------


def box(kind: bytes, *children: bytes) -> bytes:
    body = b"".join(children)
    return struct.pack(">I", 8 + len(body)) + kind + body


def track(handler: bytes, scale: int, duration: int, version: int = 0) -> bytes:
    hdlr = box(b"hdlr", bytes(8), handler, bytes(12), b"\0")
    if version == 0:
        mdhd = box(b"mdhd", bytes(12), struct.pack(">II", scale, duration), bytes(4))
    else:
        mdhd = box(b"mdhd", b"\x01", bytes(19), struct.pack(">IQ", scale, duration), bytes(4))
    return box(b"trak", box(b"tkhd", bytes(84)), box(b"mdia", mdhd, hdlr))


def iso_file(path: Path, *tracks: bytes, moov_last: bool = False) -> Path:
    ftyp = box(b"ftyp", b"M4A ", bytes(4), b"isomM4A ")
    # mdat with a 64-bit size (size field 1), as a writer of large files leaves it.
    mdat = struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 16 + 1000) + bytes(1000)
    moov = box(b"moov", box(b"mvhd", bytes(100)), *tracks)
    path.write_bytes(ftyp + (mdat + moov if moov_last else moov + mdat))
    return path


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("moov_last", [False, True])
def test_an_iso_file_declares_its_sound_tracks_duration(
    tmp_path: Path, version: int, moov_last: bool
) -> None:
    video = track(b"vide", 1000, 9000, version)
    sound = track(b"soun", 16000, 32000, version)
    path = iso_file(tmp_path / "two.m4a", video, sound, moov_last=moov_last)
    assert anymodal.container_audio_seconds(path) == 2.0


def test_an_iso_file_without_a_sound_track_or_its_duration_declares_nothing(tmp_path: Path) -> None:
    assert anymodal.container_audio_seconds(iso_file(tmp_path / "a.mp4", track(b"vide", 1000, 9000))) is None
    unknown = track(b"soun", 16000, 2**32 - 1)  # all ones: "unknown"
    assert anymodal.container_audio_seconds(iso_file(tmp_path / "b.mp4", unknown)) is None
    assert anymodal.container_audio_seconds(iso_file(tmp_path / "c.mp4", track(b"soun", 0, 32000))) is None


# --- Matroska (mkv, webm) -------------------------------------------------------------------------


def element(element_id: int, *children: bytes, unknown_size: bool = False) -> bytes:
    body = b"".join(children)
    size = b"\x01\xff\xff\xff\xff\xff\xff\xff" if unknown_size else (len(body) | 1 << 56).to_bytes(8, "big")
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + size + body


def matroska(path: Path, track_types: tuple[int, ...], duration: bytes, unknown_size: bool = False) -> Path:
    info = element(0x1549A966, element(0x2AD7B1, (1_000_000).to_bytes(3, "big")), element(0x4489, duration))
    tracks = element(0x1654AE6B, *(element(0xAE, element(0x83, bytes([kind]))) for kind in track_types))
    cluster = element(0x1F43B675, bytes(100))
    segment = element(0x18538067, info, tracks, cluster, unknown_size=unknown_size)
    path.write_bytes(element(0x1A45DFA3, element(0x4282, b"webm")) + segment)
    return path


@pytest.mark.parametrize("duration", [struct.pack(">d", 2000.0), struct.pack(">f", 2000.0)])
@pytest.mark.parametrize("unknown_size", [False, True])
def test_a_matroska_file_declares_its_segments_duration(
    tmp_path: Path, duration: bytes, unknown_size: bool
) -> None:
    path = matroska(tmp_path / "two.mka", (2,), duration, unknown_size)
    assert anymodal.container_audio_seconds(path) == 2.0


def test_a_matroska_file_with_video_declares_no_sound_duration(tmp_path: Path) -> None:
    path = matroska(tmp_path / "clip.mkv", (1, 2), struct.pack(">d", 2000.0))
    assert anymodal.container_audio_seconds(path) is None


# --- Files PyAV writes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "codec"),
    [("two.m4a", "alac"), ("two.mp4", "flac"), ("two.mov", "pcm_s16le"), ("two.mkv", "flac")],
)
def test_lossless_tracks_declare_their_exact_length(write_av: MediaWriter, name: str, codec: str) -> None:
    path = write_av(name, tone(2.0, 16000)[None], 16000, codec=codec)
    assert anymodal.container_audio_seconds(path) == 2.0


def test_an_aac_track_declares_its_encoders_priming_too(write_av: MediaWriter) -> None:
    path = write_av("two.m4a", tone(2.0, 16000)[None], 16000, codec="aac")
    declared = anymodal.container_audio_seconds(path)
    # ffmpeg's AAC encoder primes with one 1024-sample frame, which the track's duration counts.
    assert declared is not None and 2.0 <= declared <= 2.0 + 2 * 1024 / 16000
    assert declared - 2.0 < anymodal.CONTAINER_TOLERANCE_S


def test_readers_say_nothing_about_other_files(tmp_path: Path, write_av: MediaWriter) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"RIFF\xff\xff\xff\xffWAVEfmt \xff\xff\xff\xff")
    missing = tmp_path / "missing.wav"
    for path in (junk, missing):
        assert headers.wav_layout(path) is None
        assert anymodal.checked_wav_layout(path, modality="audio") is None
        assert headers.ogg_is_complete(path) is None
        anymodal.check_ogg_complete(path, modality="audio")
        assert anymodal.container_audio_seconds(path) is None
        assert anymodal.flac_sample_rate(path) is None
        assert not anymodal.mp3_declares_length(path)
    # A Matroska file with a video track: the segment's duration is not the sound's.
    video = write_av("clip.mkv", np.zeros((1, 16000), np.float32), 16000, codec="aac", video_seconds=1.0)
    assert anymodal.container_audio_seconds(video) is None


# --- Durations and the error ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.00 ms"),
        (0.00175, "1.75 ms"),
        (0.999994, "999.99 ms"),
        (0.999996, "1.00 s"),
        (2.0, "2.00 s"),
        (59.994, "59.99 s"),
        (59.996, "1.00 min"),
        (90.0, "1.50 min"),
        (3600.0, "1.00 h"),
        (36000.0, "10.00 h"),
    ],
)
def test_duration_format(seconds: float, text: str) -> None:
    assert anymodal.format_duration(seconds) == text


def test_durations_that_differ_never_read_the_same() -> None:
    assert headers.format_durations(2.0, 1.9999375) == ["2.0000 s", "1.9999 s"]
    assert headers.format_durations(2.0, 0.5) == ["2.00 s", "500.00 ms"]
    assert headers.format_durations(2.0, 2.0) == ["2.00 s", "2.00 s"]


@pytest.mark.parametrize("modality", MODALITIES)
def test_the_truncation_error_names_the_modality_both_lengths_and_the_file(modality: str) -> None:
    error = anymodal.truncated_audio_error(Path("/data/x.wav"), 2.0, 1.9999375, modality=modality)
    assert isinstance(error, anymodal.InputError)
    assert (
        error.message
        == f"{modality} file is truncated: its header says 2.0000 s, it holds 1.9999 s: /data/x.wav"
    )
    assert error.hint == HINT
