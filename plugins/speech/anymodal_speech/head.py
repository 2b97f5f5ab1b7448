"""The head of a long wav or flac, as bytes that decord decodes exactly as it decodes the file.

Whisper hears the first 30 s, but decord decodes a whole track when it opens it (an hour of 16 kHz
float32 is 230 MB, held about three times over while decord copies it). So for a wav or flac longer
than the window, decord is given only the file's first bytes, enough for the window and a margin.

Why bytes of the file itself and not samples re-encoded: decord flushes its resampler after every
decoded packet, so its output depends on where packets begin. Measured (decord 0.6): a 44.1 kHz
file decoded whole and the same samples written to a new float wav differ by up to 0.2 at every
packet boundary, while a byte-exact head decodes bit for bit like the whole file
(``test_speech_long_files``). A wav head is the original header (sizes patched) and the first
bytes of its ``data`` chunk; a flac head is the original stream cut where a frame begins.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import anymodal

#: Bytes searched past a flac cut for the start of the next frame.
_FLAC_SYNC_SEARCH = 2**20


def wav_head(path: Path, layout: anymodal.WavLayout, seconds: float) -> bytes:
    """The header and the first ``seconds`` of samples of a wav, its RIFF and data sizes made true."""
    if layout.frame_aligned:
        wanted = math.ceil(seconds * layout.sample_rate) * layout.block_align
    else:
        wanted = math.ceil(seconds * layout.byte_rate / layout.block_align) * layout.block_align
    with open(path, "rb") as stream:
        head = bytearray(stream.read(layout.data_offset + min(wanted, layout.present_bytes)))
    if head[:4] == b"RIFF":
        data = len(head) - layout.data_offset
        head[layout.data_offset - 4 : layout.data_offset] = data.to_bytes(4, "little")
        head[4:8] = (len(head) - 8).to_bytes(4, "little")
    return bytes(head)


def flac_heads(path: Path, fraction: float) -> Iterator[bytes]:
    """Growing heads of a flac: first about ``fraction`` of its frame data (with room to spare),
    then twice as much each time, up to the whole file. Each ends where a frame begins when one is
    found, so libav's parser never meets a partial frame. Only each head's bytes are read."""
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        start = _flac_frames_offset(stream, size)
        share = min(max(fraction, 0.0) * 1.25, 1.0)
        while True:
            cut = start + math.ceil(share * (size - start)) + 65536
            stream.seek(0)
            if cut >= size:
                yield stream.read()
                return
            data = stream.read(cut + _FLAC_SYNC_SEARCH)
            yield data[: _next_frame(data, cut, data[start : start + 4])]
            share *= 2


def _flac_frames_offset(stream: BinaryIO, size: int) -> int:
    """Where the frames begin: past ``fLaC`` and every metadata block."""
    offset = 4
    for _ in range(4096):
        stream.seek(offset)
        header = stream.read(4)
        if len(header) < 4:
            break
        offset += 4 + int.from_bytes(header[1:4], "big")
        if header[0] & 0x80:
            break
    return min(offset, size)


def _next_frame(data: bytes, cut: int, first: bytes) -> int:
    """The first offset at or after ``cut`` where a frame header like ``first`` (the first frame's:
    the same block size, rate and sample size codes) starts, its CRC-8 valid; ``cut`` itself when
    none is found in ``data`` (which runs :data:`_FLAC_SYNC_SEARCH` bytes past it). A CRC-8 alone
    passes one false sync in 256; the codes that stay fixed within a stream rule those out."""
    if first[:2] not in (b"\xff\xf8", b"\xff\xf9") or len(first) < 4:
        return cut
    end = len(data) - 6
    position = data.find(first[:3], cut, end)
    while 0 <= position < end:
        if data[position + 3] & 0x0F == first[3] & 0x0F and _frame_header_length(data, position):
            return position
        position = data.find(first[:3], position + 1, end)
    return cut


def _frame_header_length(data: bytes, at: int) -> int:
    """The length of a valid FLAC frame header at ``at`` (its CRC-8 included), or 0."""
    block_code, rate_code = data[at + 2] >> 4, data[at + 2] & 0x0F
    channel_code, size_code, reserved = data[at + 3] >> 4, (data[at + 3] >> 1) & 0x07, data[at + 3] & 1
    if block_code == 0 or rate_code == 15 or channel_code > 10 or size_code == 3 or reserved:
        return 0
    position = at + 4
    lead = data[position]
    extra = 0 if lead < 0x80 else 7 - (lead ^ 0xFF).bit_length()  # UTF-8-style coded number
    if lead >= 0x80 and not 1 <= extra <= 6:
        return 0
    position += 1 + extra
    position += {6: 1, 7: 2}.get(block_code, 0) + {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if position >= len(data) or _crc8(data[at:position]) != data[position]:
        return 0
    return position + 1 - at


def _crc8(data: bytes) -> int:
    """FLAC's header CRC: polynomial x^8 + x^2 + x + 1, initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc
