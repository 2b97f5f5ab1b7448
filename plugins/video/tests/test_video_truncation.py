"""Videos cut short, or whose header claims more than they hold, are refused as truncated.

Each message names the file, what the container's header declares and what the file holds. The
size checks run before decord reads a single packet (decord would fail with an obscure demuxer
error, or open a cut Matroska file as a shorter video).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from anymodal_video import decode
from anymodal_video.container import read_declared
from anymodal_video.decode import open_video

import anymodal

WriteContainer = Callable[..., Path]


def refusal(path: Path, hint: str = "cut short") -> str:
    """The message of the InputError that opening ``path`` raises (its hint must hold ``hint``)."""
    with pytest.raises(anymodal.InputError) as caught:
        open_video(path)
    assert hint in str(caught.value.hint)
    return caught.value.message


def cut(path: Path, keep: int) -> Path:
    """A copy of ``path`` beside it holding only its first ``keep`` bytes."""
    short = path.with_name(f"cut-{path.name}")
    short.write_bytes(path.read_bytes()[:keep])
    return short


@pytest.fixture
def no_decord(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the file with decord fails the test: the refusal must come from the header alone."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decord must not open a file its header already shows is cut short")

    monkeypatch.setattr(decode._import_decord(), "VideoReader", refuse)


@pytest.mark.usefixtures("no_decord")
def test_an_mp4_cut_before_its_index_says_so(write_container: WriteContainer) -> None:
    path = write_container("clip.mp4")  # PyAV writes the moov index last
    data = path.read_bytes()
    media_end = data.index(b"moov") - 4
    short = cut(path, len(data) // 2)
    assert refusal(short) == (
        f"video file is truncated: its header says at least {media_end:,} bytes (its media data, then "
        f"the moov index an MP4 gets when recording ends), it holds {len(data) // 2:,} bytes: {short}"
    )
    whole_media = cut(path, media_end)
    assert refusal(whole_media) == (
        f"video file is truncated: it lacks the moov index an MP4 gets when recording ends; "
        f"it holds {media_end:,} bytes: {whole_media}"
    )


@pytest.mark.usefixtures("no_decord")
@pytest.mark.parametrize("name", ["fast.mp4", "fast.mov"])
def test_a_faststart_mp4_cut_in_its_media_says_what_its_header_declares(
    write_container: WriteContainer, name: str
) -> None:
    path = write_container(name, frames=300, options={"movflags": "faststart"})
    size = path.stat().st_size
    short = cut(path, size - 1000)
    assert refusal(short) == (
        f"video file is truncated: its header says 30.00 s (300 frames) in {size:,} bytes, "
        f"it holds {size - 1000:,} bytes: {short}"
    )


@pytest.mark.usefixtures("no_decord")
@pytest.mark.parametrize(("name", "codec"), [("clip.mkv", "mpeg4"), ("clip.webm", "libvpx")])
def test_a_cut_matroska_file_says_what_its_header_declares(
    write_container: WriteContainer, name: str, codec: str
) -> None:
    # decord alone would open it as a shorter video.
    path = write_container(name, frames=300, codec=codec)
    size = path.stat().st_size
    short = cut(path, size // 2)
    assert refusal(short) == (
        f"video file is truncated: its header says 30.00 s in {size:,} bytes, "
        f"it holds {size // 2:,} bytes: {short}"
    )


@pytest.mark.usefixtures("no_decord")
def test_a_cut_avi_says_what_its_header_declares(write_container: WriteContainer) -> None:
    path = write_container("clip.avi", frames=300)
    size = path.stat().st_size
    short = cut(path, size - 10)
    assert refusal(short) == (
        f"video file is truncated: its header says 30.00 s (300 frames) in {size:,} bytes, "
        f"it holds {size - 10:,} bytes: {short}"
    )


def test_a_fragmented_mp4_missing_its_last_fragments_media_says_so(write_container: WriteContainer) -> None:
    path = write_container("live.mp4", frames=60, options={"movflags": "frag_keyframe+empty_moov"})
    data = path.read_bytes()
    last_moof = data.rindex(b"moof") - 4
    last_mdat = data.index(b"mdat", last_moof) - 4
    short = cut(path, last_mdat)
    assert refusal(short) == (
        f"video file is truncated: it lacks the media data (mdat) of its last fragment; "
        f"it holds {last_mdat:,} bytes: {short}"
    )


def test_a_matroska_duration_longer_than_its_frames_is_refused(write_container: WriteContainer) -> None:
    path = write_container("clip.mkv", frames=30)
    data = bytearray(path.read_bytes())
    at = data.index(b"\x44\x89\x88") + 3  # Duration, an 8-byte float in milliseconds
    assert struct.unpack(">d", data[at : at + 8]) == (3000.0,)
    data[at : at + 8] = struct.pack(">d", 60_000.0)
    path.write_bytes(bytes(data))
    assert (
        refusal(path)
        == f"video file is truncated: its header says 0:01:00.0, it holds 3.00 s (30 frames): {path}"
    )
    data[at : at + 8] = struct.pack(">d", 3900.0)  # within the slack for an audio track that outlasts it
    path.write_bytes(bytes(data))
    assert open_video(path).num_frames == 30


def test_an_mp4_track_length_longer_than_its_frames_is_refused(write_container: WriteContainer) -> None:
    path = write_container("clip.mp4", frames=30)
    data = bytearray(path.read_bytes())
    at = data.index(b"mdhd") + 4 + 4 + 8  # version and flags, creation and modification times
    timescale, duration = struct.unpack(">II", data[at : at + 8])
    assert duration / timescale == 3.0
    data[at + 4 : at + 8] = struct.pack(">I", 4 * duration)
    path.write_bytes(bytes(data))
    assert refusal(path) == (
        f"video file is truncated: its header says 12.00 s (30 frames), it holds 3.00 s (30 frames): {path}"
    )


@pytest.mark.parametrize(
    ("name", "codec", "options", "container"),
    [
        ("a.mp4", "mpeg4", None, "MP4"),
        ("b.mp4", "mpeg4", {"movflags": "faststart"}, "MP4"),
        ("c.mkv", "mpeg4", None, "Matroska"),
        ("d.avi", "mpeg4", None, "AVI"),
    ],
)
def test_complete_files_declare_what_they_hold(
    write_container: WriteContainer, name: str, codec: str, options: dict[str, str] | None, container: str
) -> None:
    path = write_container(name, frames=50, codec=codec, options=options)
    declared = read_declared(path)
    assert declared is not None
    assert (declared.container, declared.end, declared.seconds, declared.missing) == (
        container,
        path.stat().st_size,
        5,
        None,
    )
    assert declared.frames == (None if container == "Matroska" else 50)
    assert open_video(path).num_frames == 50


def test_other_files_declare_nothing(tmp_path: Path) -> None:
    for name, data in (("a.mp4", b"not a video at all"), ("b.mkv", b"\x1aE\xdf\xa3\x00"), ("c.mp4", b"")):
        path = tmp_path / name
        path.write_bytes(data)
        assert read_declared(path) is None


# Headers whose lies would make decord reserve memory for billions of frames when it opens the
# file: the reservation fails inside C++ and aborts the whole process, so they never reach decord.


@pytest.mark.usefixtures("no_decord")
def test_an_absurd_matroska_duration_is_refused_before_decord(write_container: WriteContainer) -> None:
    path = write_container("clip.mkv", frames=30)
    data = bytearray(path.read_bytes())
    at = data.index(b"\x44\x89\x88") + 3
    data[at : at + 8] = struct.pack(">d", 3000.0 * 2**32)  # a flipped exponent bit, as a fuzzer found
    path.write_bytes(bytes(data))
    assert refusal(path, hint="shorter file") == (
        f"video file is too long: its header says it lasts 3579139:24:48.0, the limit is 4:00:00.0: {path}"
    )


@pytest.mark.usefixtures("no_decord")
def test_a_matroska_frame_rate_that_implies_more_frames_than_bytes_is_refused(
    write_container: WriteContainer,
) -> None:
    path = write_container("clip.mkv", frames=30)
    data = bytearray(path.read_bytes())
    at = data.index(b"\x23\xe3\x83")  # DefaultDuration: nanoseconds per frame
    width = data[at + 3] & 0x7F
    data[at + 4 : at + 4 + width] = (1).to_bytes(width, "big")  # one frame per nanosecond
    path.write_bytes(bytes(data))
    assert refusal(path) == (
        f"video file is truncated: its header says 3.00 s (3,000,000,000 frames), "
        f"it holds {len(data):,} bytes: {path}"
    )


@pytest.mark.usefixtures("no_decord")
@pytest.mark.parametrize(
    ("rate", "length", "message"),
    [
        (
            10,
            0x7FFFFFFF,
            "video file is too long: its header says it lasts 59652:19:24.7, the limit is 4:00:00.0",
        ),
        (
            10**6,
            10**6,
            "video file is truncated: its header says 1.00 s (1,000,000 frames), it holds {size} bytes",
        ),
    ],
)
def test_an_avi_stream_header_that_lies_is_refused_before_decord(
    write_container: WriteContainer, rate: int, length: int, message: str
) -> None:
    path = write_container("clip.avi", frames=30)
    data = bytearray(path.read_bytes())
    at = data.index(b"strh") + 8  # fccType, handler, flags, priority, language, initial frames
    assert data[at : at + 4] == b"vids"
    data[at + 20 : at + 36] = struct.pack("<4I", 1, rate, 0, length)  # scale, rate, start, length
    path.write_bytes(bytes(data))
    hint = "shorter file" if "too long" in message else "cut short"
    assert refusal(path, hint) == message.format(size=f"{len(data):,}") + f": {path}"
