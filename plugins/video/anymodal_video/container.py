"""What a video file's container says about itself: its size, length and frame count.

decord (FFmpeg) indexes the packets a file holds when it opens it, and reports those. A file cut
short therefore either fails with a demuxer error that does not say why, or (Matroska, WebM)
opens as a shorter video whose last packet may be half there. The container's own structure says
how long the file should be, so it is read here, from the headers only, by seeking over the data:
a few kilobytes whatever the length of the video.

* ISO base media (``.mp4 .mov .m4v``): the top-level boxes and their sizes; in the ``moov`` box,
  the video track's length (``mdhd``, else the movie's ``mvhd``) and sample count (``stsz``).
* Matroska and WebM (``.mkv .webm``): the size of the EBML header and the Segment, the
  Segment's Duration (in ``Info``) and the video track's frame rate (``DefaultDuration`` in
  ``Tracks``), both of which muxers write before the first Cluster.
* RIFF (``.avi``): the sizes of its top-level chunks, and the length, rate and frame count of the
  first video stream's ``strh`` header.

The frame count these imply matters beyond messages: before indexing, decord reserves memory
for as many frames as FFmpeg expects (the declared count, else duration times frame rate), and a
lying header makes that reservation fail inside C++, which aborts the process. The caller checks
:attr:`Declared.frames_implied` against the file's size before decord sees the file.

:func:`read_declared` returns None for anything else, and for a header it cannot make sense of:
then decord's own checks are all there is. A damaged size field reads as a file cut short, which
is what the header claims.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

#: Most boxes, chunks or elements read at one level before a header is taken as garbage.
MAX_ENTRIES = 10_000

_BMFF_FIRST = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
_EBML, _SEGMENT, _INFO, _CLUSTER = 0x1A45DFA3, 0x18538067, 0x1549A966, 0x1F43B675
_TIMESTAMP_SCALE, _DURATION = 0x2AD7B1, 0x4489
_TRACKS, _TRACK_ENTRY, _TRACK_TYPE, _DEFAULT_DURATION = 0x1654AE6B, 0xAE, 0x83, 0x23E383


@dataclass(frozen=True)
class Declared:
    """What a container's header declares. ``end`` is the size its structure needs, in bytes;
    ``missing`` names a part its structure requires but the file lacks (:data:`MISSING_INDEX`,
    when ``end`` is only a lower bound, or :data:`MISSING_FRAGMENT`)."""

    container: str
    end: int
    seconds: Fraction | None = None
    frames: int | None = None
    missing: str | None = None
    frame_rate: Fraction | None = None

    @property
    def frames_implied(self) -> int | None:
        """The frame count FFmpeg will assume before it has read a packet: the declared count, or
        length times frame rate (decord reserves memory for this many frames on open)."""
        if self.frames is not None:
            return self.frames
        if self.seconds is not None and self.frame_rate is not None:
            return math.ceil(self.seconds * self.frame_rate)
        return None


#: An MP4 without a ``moov`` box: it is written when recording ends, after the media data.
MISSING_INDEX = "the moov index an MP4 gets when recording ends"
#: A fragmented MP4 ending with a ``moof`` box: the fragment's media data is not there.
MISSING_FRAGMENT = "the media data (mdat) of its last fragment"


def read_declared(path: Path) -> Declared | None:
    """The declarations of ``path``'s container, or None for a container not read here."""
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, 2)
            stream.seek(0)
            head = stream.read(12)
            if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
                return _riff(stream, size)
            if head[:4] == _EBML.to_bytes(4, "big"):
                return _matroska(stream, size)
            if len(head) >= 8 and head[4:8] in _BMFF_FIRST:
                return _bmff(stream, size)
    except (OSError, struct.error, ValueError, OverflowError):
        return None
    return None


# ISO base media file format -----------------------------------------------------------------


def _boxes(stream: BinaryIO, start: int, stop: int) -> Iterator[tuple[bytes, int, int]]:
    """``(type, payload start, end)`` of the boxes in ``[start, stop)``; the last may end past
    ``stop`` (a cut file). A box too small for its own header ends the walk."""
    offset = start
    for _ in range(MAX_ENTRIES):
        if offset >= stop:
            return
        if offset + 8 > stop:  # cut inside a box's header
            yield b"", offset, offset + 8
            return
        stream.seek(offset)
        size, kind = struct.unpack(">I4s", stream.read(8))
        header = 8
        if size == 1:
            field = stream.read(8)
            if len(field) < 8:
                yield kind, offset + 16, offset + 16  # cut inside the header itself
                return
            size, header = struct.unpack(">Q", field)[0], 16
        elif size == 0:  # extends to the end of its parent
            size = stop - offset
        if size < header:
            return
        yield kind, offset + header, offset + size
        offset += size


def _child(stream: BinaryIO, start: int, stop: int, *path: bytes) -> tuple[int, int] | None:
    """Payload ``(start, end)`` of the first box at ``path`` below ``[start, stop)``."""
    for kind, payload, end in _boxes(stream, start, stop):
        if kind == path[0] and end <= stop:
            return (payload, end) if len(path) == 1 else _child(stream, payload, end, *path[1:])
    return None


def _bmff(stream: BinaryIO, size: int) -> Declared | None:
    end, moov, seen, last = 0, None, False, b""
    for kind, payload, box_end in _boxes(stream, 0, size):
        end, last = max(end, box_end), kind
        seen = seen or kind == b"moov"
        if kind == b"moov" and box_end <= size:
            moov = (payload, box_end)
    if end == 0:
        return None
    if not seen:
        return Declared("MP4", end, missing=MISSING_INDEX)
    if moov is None:
        return Declared("MP4", end)
    seconds, frames = _movie_length(stream, *moov)
    return Declared("MP4", end, seconds, frames, MISSING_FRAGMENT if last == b"moof" else None)


def _movie_length(stream: BinaryIO, start: int, stop: int) -> tuple[Fraction | None, int | None]:
    """The video track's length and sample count; the movie's length without a video track."""
    seconds = None
    header = _child(stream, start, stop, b"mvhd")
    if header is not None:
        seconds = _timed_length(stream, header[0])
    for kind, payload, end in _boxes(stream, start, stop):
        if kind != b"trak" or end > stop:
            continue
        media = _child(stream, payload, end, b"mdia")
        handler = media and _child(stream, *media, b"hdlr")
        if not media or not handler:
            continue
        stream.seek(handler[0] + 8)  # version and flags, pre_defined
        if stream.read(4) != b"vide":
            continue
        timed = _child(stream, *media, b"mdhd")
        track_seconds = _timed_length(stream, timed[0]) if timed else None
        sizes = _child(stream, *media, b"minf", b"stbl", b"stsz")
        frames = None
        if sizes is not None:
            stream.seek(sizes[0] + 8)  # version and flags, sample_size
            frames = struct.unpack(">I", stream.read(4))[0] or None  # 0 in a fragmented file
        return track_seconds or seconds, frames
    return seconds, None


def _timed_length(stream: BinaryIO, payload: int) -> Fraction | None:
    """``duration / timescale`` of an ``mvhd`` or ``mdhd`` box (version 0 or 1)."""
    stream.seek(payload)
    version = stream.read(4)[0]
    if version == 1:
        stream.seek(payload + 4 + 16)
        timescale, duration = struct.unpack(">IQ", stream.read(12))
    else:
        stream.seek(payload + 4 + 8)
        timescale, duration = struct.unpack(">II", stream.read(8))
    if timescale == 0 or duration in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        return None
    return Fraction(duration, timescale)


# Matroska / WebM ----------------------------------------------------------------------------


def _vint(stream: BinaryIO) -> tuple[int, int, int]:
    """An EBML variable-length integer: ``(bytes as read, value without its length marker, length)``.
    Element IDs are the bytes as read; sizes are the value, all bits set meaning unknown."""
    first = stream.read(1)
    if not first or first[0] == 0:
        raise ValueError("not an EBML variable-length integer")
    length = 9 - first[0].bit_length()
    rest = stream.read(length - 1)
    if len(rest) < length - 1:
        raise ValueError("cut inside an EBML integer")
    raw = int.from_bytes(first + rest, "big")
    return raw, raw & ((1 << (7 * length)) - 1), length


def _elements(stream: BinaryIO, start: int, stop: int) -> Iterator[tuple[int, int, int | None]]:
    """``(id, payload start, payload size or None when unknown)`` of the elements in ``[start, stop)``."""
    offset = start
    for _ in range(MAX_ENTRIES):
        if offset >= stop:
            return
        stream.seek(offset)
        element, _, id_length = _vint(stream)
        _, size, size_length = _vint(stream)
        payload = offset + id_length + size_length
        if size == (1 << (7 * size_length)) - 1:
            yield element, payload, None
            return
        yield element, payload, size
        offset = payload + size


def _matroska(stream: BinaryIO, size: int) -> Declared | None:
    end, seconds, rate = 0, None, None
    for element, payload, length in _elements(stream, 0, size):
        if length is None:  # a live stream's Segment: its size was never written
            return Declared("Matroska", max(end, payload), seconds, frame_rate=rate)
        end = payload + length
        if element == _SEGMENT:
            seconds, rate = _segment_header(stream, payload, min(end, size))
    return Declared("Matroska", end, seconds, frame_rate=rate) if end else None


def _segment_header(stream: BinaryIO, start: int, stop: int) -> tuple[Fraction | None, Fraction | None]:
    """The Segment's Duration in seconds (Info) and its video track's frame rate (Tracks, from
    DefaultDuration), looked for before the first Cluster."""
    scale: int | float = 1_000_000
    duration: int | float | None = None
    rate: Fraction | None = None
    for element, payload, length in _elements(stream, start, stop):
        if element == _CLUSTER or length is None:
            break
        inside = min(payload + length, stop)
        if element == _INFO:
            fields = _numbers(stream, payload, inside)
            scale = fields.get(_TIMESTAMP_SCALE, scale)
            duration = fields.get(_DURATION)
        elif element == _TRACKS:
            for entry, entry_at, entry_size in _elements(stream, payload, inside):
                if entry != _TRACK_ENTRY or entry_size is None:
                    continue
                fields = _numbers(stream, entry_at, min(entry_at + entry_size, inside))
                nanoseconds = fields.get(_DEFAULT_DURATION)
                if fields.get(_TRACK_TYPE) == 1 and isinstance(nanoseconds, int) and nanoseconds > 0:
                    rate = Fraction(1_000_000_000, nanoseconds)
                    break
    seconds = None
    if isinstance(duration, float) and 0 < duration < float("inf") and isinstance(scale, int):
        seconds = Fraction(duration) * scale / 1_000_000_000
    return seconds, rate


def _numbers(stream: BinaryIO, start: int, stop: int) -> dict[int, int | float]:
    """The numeric children of an element: unsigned integers, and floats for Duration."""
    found: dict[int, int | float] = {}
    for child, value_at, value_size in _elements(stream, start, stop):
        if value_size is None:
            break
        if value_size > 8:  # strings, binary data and masters: not what is looked for
            continue
        stream.seek(value_at)
        raw = stream.read(value_size)
        if len(raw) < value_size:
            break
        if child == _DURATION:
            if value_size in (4, 8):
                found[child] = struct.unpack(">f" if value_size == 4 else ">d", raw)[0]
        elif raw:
            found[child] = int.from_bytes(raw, "big")
    return found


# RIFF (AVI) ---------------------------------------------------------------------------------


def _chunks(stream: BinaryIO, start: int, stop: int) -> Iterator[tuple[bytes, int, int]]:
    """``(id, payload start, end)`` of the RIFF chunks in ``[start, stop)`` (padded to even sizes)."""
    offset = start
    for _ in range(MAX_ENTRIES):
        if offset + 8 > stop:
            return
        stream.seek(offset)
        kind, length = struct.unpack("<4sI", stream.read(8))
        yield kind, offset + 8, offset + 8 + length
        offset += 8 + length + (length & 1)


def _riff(stream: BinaryIO, size: int) -> Declared | None:
    end, riffs, header = 0, 0, None
    for kind, payload, chunk_end in _chunks(stream, 0, size):
        end = max(end, chunk_end)
        riffs += kind == b"RIFF"
        if riffs == 1 and kind == b"RIFF":
            header = (payload, min(chunk_end, size))
    seconds, frames, rate = _avi_stream(stream, *header) if header else (None, None, None)
    return Declared("AVI", end, seconds, frames, frame_rate=rate)


def _avi_stream(
    stream: BinaryIO, start: int, stop: int
) -> tuple[Fraction | None, int | None, Fraction | None]:
    """Length, frame count and rate of the first video stream's ``strh`` header (in ``hdrl``,
    ``strl``): the count FFmpeg takes, which also covers the RIFF AVIX parts of an OpenDML file."""
    for kind, payload, end in _chunks(stream, start + 4, stop):  # after the form type "AVI "
        stream.seek(payload)
        if kind != b"LIST" or stream.read(4) != b"hdrl":
            continue
        for inner, inner_at, _ in _chunks(stream, payload + 4, min(end, stop)):
            stream.seek(inner_at)
            if inner != b"LIST" or stream.read(4) != b"strl":
                continue
            stream.seek(inner_at + 4)  # the strh chunk comes first in a strl list
            head = stream.read(44)
            if len(head) < 44 or head[:4] != b"strh" or head[8:12] != b"vids":
                continue
            head = head[8:]
            scale, rate, _, length = struct.unpack("<4I", head[20:36])
            if not scale or not rate:
                return None, length, None
            return Fraction(length * scale, rate) or None, length, Fraction(rate, scale)
    return None, None, None
