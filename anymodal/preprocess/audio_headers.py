"""What an audio file's own header declares about its length, and the error for a file that holds
less (public API for modality plugins that read sound: audio, speech). Standard library only.

The decoders do not say when a file holds less than its header promises: libsndfile clamps a WAV's
length to the bytes present, and decord reports only what it decoded. These readers take the
declared length from the public container formats themselves, so a loader can compare:

* RIFF/WAVE (and RF64/BW64): the ``data`` chunk's byte count, with ``fmt ``'s block align and rate
  (:func:`wav_layout`; :func:`checked_wav_layout` also refuses a cut file).
* Ogg: no length is declared anywhere; a complete stream ends with a page flagged end-of-stream
  (:func:`ogg_is_complete`; :func:`check_ogg_complete` refuses a file without it).
* MP3: whether a Xing/Info/VBRI header gives the frame count, otherwise the length is an estimate
  (:func:`mp3_declares_length`).
* FLAC: the STREAMINFO sample rate, since 0 Hz crashes decord (:func:`flac_sample_rate`).
* ISO base media (mp4, m4a, mov): the sound track's ``mdhd`` duration over its time scale; Matroska
  (mkv, webm): the segment's Info duration, when every track is audio (:func:`container_audio_seconds`).

Every reader reads a bounded amount (a few chunk headers, the last Ogg page, the ``moov`` box up to
:data:`MAX_HEADER_BYTES`), never allocates from a size it read, and answers ``None`` for anything
it cannot make sense of: the decoder then has the last word on a malformed file.

A file that holds less than it declares is an :class:`~anymodal.InputError` of one line,
``<modality> file is truncated: its header says 2.00 s, it holds 1.75 ms: <path>``
(:func:`truncated_audio_error`), ``modality`` being the plugin's word ("audio", "speech"). What is
forgiven, as "a partial last frame or packet" and not truncation:

* WAV: less than one block (``fmt``'s block align: one frame of PCM) of the declared data missing.
* FLAC, MP3, Ogg read through soundfile: up to one codec frame of samples missing,
  :data:`CODEC_FRAME_SAMPLES` (FLAC's largest common block, MP3's layer III frame, Vorbis's long block).
* Containers decoded by decord (mp4, m4a, mov, mkv, webm): up to :data:`CONTAINER_TOLERANCE_S` of
  the sound track's declared duration missing, which covers AAC and Opus encoder priming and a last
  packet even at 8 kHz.

Durations in messages read ``1.75 ms``, ``2.00 s``, ``12.50 min``, ``10.00 h`` (:func:`format_duration`):
milliseconds below one second, seconds below a minute, minutes below an hour, then hours, with two
decimals. The unit is chosen after rounding, so 0.999996 s reads ``1.00 s``, never ``1000.00 ms``.
:func:`format_durations` adds decimals (up to six) where two different durations would otherwise
read the same, so "its header says 2.00 s, it holds 2.00 s" cannot happen.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from anymodal.contract.errors import InputError

#: Most bytes read from one header structure (an mp4 ``moov`` box, the start of a Matroska file).
MAX_HEADER_BYTES = 16 * 2**20
#: Most chunks, boxes or elements walked before giving up on a file.
MAX_ELEMENTS = 4096

#: Samples of one codec frame forgiven at the end of a file, by libsndfile's major format name
#: (``soundfile.info(path).format``).
CODEC_FRAME_SAMPLES: Mapping[str, int] = MappingProxyType({"FLAC": 4608, "MP3": 1152, "OGG": 8192})
#: Seconds of a decord-decoded sound track forgiven at the end.
CONTAINER_TOLERANCE_S = 0.5
#: The hint of every truncation error.
TRUNCATED_HINT = "the file was cut short (an interrupted download or copy); re-export or re-download it"

#: WAVE format tags whose ``block_align`` is the size of one frame (PCM, float, A-law, mu-law,
#: extensible). Other tags (ADPCM, GSM, mp3 in wav) pack many frames into one block.
_FRAME_ALIGNED_TAGS = frozenset({0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE})
#: A RIFF size of all ones: the writer could not seek back to fill it in (a stream, a pipe).
_OPEN_SIZE = 0xFFFFFFFF
#: The largest Ogg page: a 27-byte header, 255 lacing values, 255 segments of 255 bytes.
_OGG_MAX_PAGE = 27 + 255 + 255 * 255
#: The most decimals :func:`format_durations` uses to tell two durations apart.
_MOST_DECIMALS = 6


# --- The errors ---------------------------------------------------------------------------------


def truncated_audio_error(path: str | Path, declared_s: float, held_s: float, *, modality: str) -> InputError:
    """``<modality> file is truncated: its header says 2.00 s, it holds 1.75 ms: <path>``, the two
    durations with enough decimals to differ (:func:`format_durations`)."""
    declared, held = format_durations(declared_s, held_s)
    return InputError(
        f"{modality} file is truncated: its header says {declared}, it holds {held}: {path}",
        hint=TRUNCATED_HINT,
    )


def check_ogg_complete(path: str | Path, *, modality: str) -> None:
    """InputError when ``path`` is an Ogg file whose last page is cut short or missing (no
    end-of-stream page); nothing for a complete Ogg file or a file that is not Ogg at all."""
    if ogg_is_complete(path) is False:
        raise InputError(
            f"{modality} file is truncated: its Ogg stream stops without its end-of-stream page: {path}",
            hint=TRUNCATED_HINT,
        )


def checked_wav_layout(path: str | Path, *, modality: str) -> WavLayout | None:
    """:func:`wav_layout` of ``path`` (``None`` when it is no WAV), and an InputError when its
    ``data`` chunk holds a whole block less than it declares. A size left open is not checked."""
    layout = wav_layout(path)
    if layout is None or layout.declared_bytes is None or layout.missing_bytes < layout.block_align:
        return layout
    declared, held = layout.seconds(layout.declared_bytes), layout.seconds(layout.present_bytes)
    raise truncated_audio_error(path, declared, held, modality=modality)


# --- Durations as messages print them -------------------------------------------------------------


def format_duration(seconds: float, decimals: int = 2) -> str:
    """``seconds`` in the largest unit that keeps the value below 60 (1000 for milliseconds):
    ``1.75 ms``, ``2.00 s``, ``12.50 min``, ``10.00 h``."""
    if not math.isfinite(seconds) or seconds < 0:
        return f"{seconds} s"
    if round(seconds * 1000, decimals) < 1000:
        return f"{seconds * 1000:.{decimals}f} ms"
    if round(seconds, decimals) < 60:
        return f"{seconds:.{decimals}f} s"
    if round(seconds / 60, decimals) < 60:
        return f"{seconds / 60:.{decimals}f} min"
    return f"{seconds / 3600:.{decimals}f} h"


def format_durations(*durations: float) -> list[str]:
    """Each of ``durations`` formatted, with the fewest decimals (two to six) that tell apart
    those that differ."""
    texts: list[str] = []
    for decimals in range(2, _MOST_DECIMALS + 1):
        texts = [format_duration(seconds, decimals) for seconds in durations]
        if len(set(texts)) == len(set(durations)):
            break
    return texts


# --- RIFF/WAVE, RF64, BW64 ------------------------------------------------------------------------


@dataclass(frozen=True)
class WavLayout:
    """Where a WAV's samples are, and how many bytes of them its ``data`` chunk declares."""

    sample_rate: int
    block_align: int
    byte_rate: int
    frame_aligned: bool
    data_offset: int
    #: ``None`` when the writer left the size open (all ones in a RIFF file).
    declared_bytes: int | None
    file_size: int

    @property
    def present_bytes(self) -> int:
        return max(self.file_size - self.data_offset, 0)

    @property
    def missing_bytes(self) -> int:
        """How many declared bytes are not in the file (0 when the size is open or all there)."""
        if self.declared_bytes is None:
            return 0
        return max(self.declared_bytes - self.present_bytes, 0)

    def seconds(self, data_bytes: int) -> float:
        """The duration of ``data_bytes`` of sample data (whole frames only)."""
        if self.frame_aligned:
            return (data_bytes // self.block_align) / self.sample_rate
        return data_bytes / self.byte_rate if self.byte_rate else 0.0


def wav_layout(path: str | Path) -> WavLayout | None:
    """The layout of a RIFF/WAVE, RF64 or BW64 file; ``None`` for anything else or a header that
    does not parse (no ``fmt `` before ``data``, a zero rate or block align, no ``data`` chunk)."""
    try:
        with open(path, "rb") as stream:
            return _read_wav_layout(stream, os.fstat(stream.fileno()).st_size)
    except (OSError, ValueError, struct.error):
        return None


def _read_wav_layout(stream: BinaryIO, file_size: int) -> WavLayout | None:
    read, seek = stream.read, stream.seek
    head = read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        return None
    sixty_four = head[:4] != b"RIFF"
    fmt = b""
    ds64_data: int | None = None
    offset = 12
    for _ in range(MAX_ELEMENTS):
        seek(offset)
        header = read(8)
        if len(header) < 8:
            return None
        chunk, length = header[:4], int.from_bytes(header[4:], "little")
        if chunk == b"fmt ":
            fmt = read(min(length, 16))
        elif chunk == b"ds64" and sixty_four:
            body = read(min(length, 16))
            ds64_data = int.from_bytes(body[8:16], "little") if len(body) == 16 else None
        elif chunk == b"data":
            return _layout(fmt, length, sixty_four, ds64_data, offset + 8, file_size)
        offset += 8 + length + (length & 1)
    return None


def _layout(
    fmt: bytes, length: int, sixty_four: bool, ds64_data: int | None, data_offset: int, file_size: int
) -> WavLayout | None:
    if len(fmt) < 14:
        return None
    tag, _channels, rate, byte_rate, block_align = struct.unpack("<HHIIH", fmt[:14])
    if rate == 0 or block_align == 0:
        return None
    declared: int | None = length
    if length == _OPEN_SIZE:
        declared = ds64_data if sixty_four else None
    return WavLayout(
        rate, block_align, byte_rate, tag in _FRAME_ALIGNED_TAGS, data_offset, declared, file_size
    )


# --- Ogg ------------------------------------------------------------------------------------------


def ogg_is_complete(path: str | Path) -> bool | None:
    """Whether an Ogg file ends with a whole page flagged end-of-stream; ``None`` when the file
    does not start with an Ogg page. Only the last :data:`_OGG_MAX_PAGE` bytes are read; trailing
    bytes after that last page (a tag some tool appended) are allowed."""
    try:
        with open(path, "rb") as stream:
            if stream.read(4) != b"OggS":
                return None
            size = os.fstat(stream.fileno()).st_size
            start = max(size - _OGG_MAX_PAGE, 0)
            stream.seek(start)
            tail = stream.read(_OGG_MAX_PAGE)
    except OSError:
        return None
    position = tail.rfind(b"OggS")
    for _ in range(MAX_ELEMENTS):
        if position < 0:
            return False
        if _is_whole_final_page(tail, position):
            return True
        position = tail.rfind(b"OggS", 0, position)
    return False


def _is_whole_final_page(tail: bytes, position: int) -> bool:
    if len(tail) - position < 27 or tail[position + 4] != 0 or not tail[position + 5] & 0x04:
        return False
    segments = tail[position + 26]
    lacing = tail[position + 27 : position + 27 + segments]
    return len(lacing) == segments and position + 27 + segments + sum(lacing) <= len(tail)


# --- FLAC and MP3 ---------------------------------------------------------------------------------


def _past_id3(stream: BinaryIO) -> None:
    """Seek past an ID3v2 tag at the start of ``stream`` (mp3 and flac files may begin with one)."""
    head = stream.read(10)
    skip = 0
    if len(head) == 10 and head[:3] == b"ID3":
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | head[9] & 0x7F
        skip = 10 + size + (10 if head[5] & 0x10 else 0)
    stream.seek(skip)


def flac_sample_rate(path: str | Path) -> int | None:
    """The sample rate a FLAC stream's STREAMINFO declares; ``None`` for anything else. decord 0.6
    divides by the stream's rate after decoding, so a FLAC declaring 0 Hz kills the process with
    SIGFPE (found by fuzzing): loaders refuse it before decord sees it."""
    try:
        with open(path, "rb") as stream:
            _past_id3(stream)
            head = stream.read(4 + 4 + 13)
    except OSError:
        return None
    if len(head) < 21 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    return int.from_bytes(head[18:21], "big") >> 4


def mp3_declares_length(path: str | Path) -> bool:
    """Whether an MP3's first frame carries a Xing, Info or VBRI header, i.e. a frame count. Without
    one, a decoder's length is an estimate from the file size and the first frame's bit rate."""
    try:
        with open(path, "rb") as stream:
            _past_id3(stream)
            start = stream.read(4096)
    except OSError:
        return False
    for sync in range(len(start) - 1):
        if start[sync] == 0xFF and start[sync + 1] & 0xE0 == 0xE0:
            frame = start[sync : sync + 200]
            return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))
    return False


# --- ISO base media (mp4, m4a, mov) and Matroska (mkv, webm) --------------------------------------


def container_audio_seconds(path: str | Path) -> float | None:
    """The sound track's declared duration in an ISO base media (mp4, m4a, mov) or Matroska (mkv,
    webm) file; ``None`` when the file is neither, declares none, or has non-audio Matroska tracks
    (a segment's duration then covers the video too)."""
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            head = stream.read(12)
            stream.seek(0)
            if head[:4] == b"\x1a\x45\xdf\xa3":
                return _matroska_audio_seconds(stream.read(MAX_HEADER_BYTES))
            if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"):
                return _iso_audio_seconds(stream, size)
    except (OSError, ValueError, struct.error, OverflowError):
        return None
    return None


def _iso_audio_seconds(stream: BinaryIO, file_size: int) -> float | None:
    read, seek = stream.read, stream.seek
    offset = 0
    for _ in range(MAX_ELEMENTS):
        seek(offset)
        header = read(8)
        if len(header) < 8:
            return None
        size, kind = int.from_bytes(header[:4], "big"), header[4:]
        skip = 8
        if size == 1:
            size, skip = int.from_bytes(read(8), "big"), 16
        elif size == 0:
            size = file_size - offset
        if size < skip:
            return None
        if kind == b"moov":
            return _moov_audio_seconds(read(min(size - skip, MAX_HEADER_BYTES)))
        offset += size
    return None


def _iso_boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """``(type, body start, body end)`` of the boxes in ``data[start:end]``."""
    boxes: list[tuple[bytes, int, int]] = []
    offset = start
    while offset + 8 <= end and len(boxes) < MAX_ELEMENTS:
        size, kind = int.from_bytes(data[offset : offset + 4], "big"), data[offset + 4 : offset + 8]
        skip = 8
        if size == 1:
            size, skip = int.from_bytes(data[offset + 8 : offset + 16], "big"), 16
        elif size == 0:
            size = end - offset
        if size < skip:
            break
        boxes.append((kind, offset + skip, min(offset + size, end)))
        offset += size
    return boxes


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, body_start, body_end in _iso_boxes(data, start, end):
        if found == kind:
            return body_start, body_end
    return None


def _moov_audio_seconds(moov: bytes) -> float | None:
    for kind, start, end in _iso_boxes(moov, 0, len(moov)):
        if kind != b"trak" or (mdia := _child(moov, start, end, b"mdia")) is None:
            continue
        hdlr, mdhd = _child(moov, *mdia, b"hdlr"), _child(moov, *mdia, b"mdhd")
        if hdlr is None or mdhd is None or moov[hdlr[0] + 8 : hdlr[0] + 12] != b"soun":
            continue
        body = moov[mdhd[0] : mdhd[1]]
        if body[:1] == b"\x01" and len(body) >= 32:
            scale, duration = struct.unpack(">IQ", body[20:32])
            unknown = 2**64 - 1
        elif len(body) >= 20:
            scale, duration = struct.unpack(">II", body[12:20])
            unknown = 2**32 - 1
        else:
            return None
        return duration / scale if scale and 0 < duration < unknown else None
    return None


# Matroska element IDs (marker bits kept, as the specification writes them).
_SEGMENT, _INFO, _TRACKS, _CLUSTER = 0x18538067, 0x1549A966, 0x1654AE6B, 0x1F43B675
_TIMESTAMP_SCALE, _DURATION, _TRACK_ENTRY, _TRACK_TYPE = 0x2AD7B1, 0x4489, 0xAE, 0x83
_AUDIO_TRACK = 2


def _vint(data: bytes, offset: int, keep_marker: bool) -> tuple[int | None, int]:
    """An EBML variable-length integer at ``offset``: its value (``None`` for the all-ones
    'unknown size') and the offset after it. ValueError when it does not parse."""
    if offset >= len(data) or data[offset] == 0:
        raise ValueError("bad EBML integer")
    length = 9 - data[offset].bit_length()
    if offset + length > len(data):
        raise ValueError("EBML integer past the end")
    value = int.from_bytes(data[offset : offset + length], "big")
    if keep_marker:
        return value, offset + length
    value &= (1 << (7 * length)) - 1
    return (None if value == (1 << (7 * length)) - 1 else value), offset + length


def _ebml_elements(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """``(id, body start, body end)`` of the elements in ``data[start:end]``, up to the first of
    unknown size (whose body runs to ``end``)."""
    elements: list[tuple[int, int, int]] = []
    offset = start
    while offset < end and len(elements) < MAX_ELEMENTS:
        element, offset = _vint(data, offset, keep_marker=True)
        size, offset = _vint(data, offset, keep_marker=False)
        body_end = end if size is None else min(offset + size, end)
        elements.append((element or 0, offset, body_end))
        if size is None:
            break
        offset = body_end
    return elements


def _matroska_audio_seconds(data: bytes) -> float | None:
    top = _ebml_elements(data, 0, len(data))
    segment = next(((start, end) for element, start, end in top if element == _SEGMENT), None)
    if segment is None:
        return None
    scale, duration, types = 1_000_000, None, []
    for element, start, end in _ebml_elements(data, *segment):
        if element == _CLUSTER:
            break
        if element == _INFO:
            for child, child_start, child_end in _ebml_elements(data, start, end):
                body = data[child_start:child_end]
                if child == _TIMESTAMP_SCALE and body:
                    scale = int.from_bytes(body, "big")
                elif child == _DURATION and len(body) in (4, 8):
                    duration = struct.unpack(">f" if len(body) == 4 else ">d", body)[0]
        elif element == _TRACKS:
            for entry, entry_start, entry_end in _ebml_elements(data, start, end):
                if entry == _TRACK_ENTRY:
                    fields = _ebml_elements(data, entry_start, entry_end)
                    types += [int.from_bytes(data[s:e], "big") for f, s, e in fields if f == _TRACK_TYPE]
    if duration is None or not types or any(kind != _AUDIO_TRACK for kind in types):
        return None
    seconds = duration * scale / 1e9
    return seconds if 0 < seconds < float("inf") else None
