"""Open a wav, flac, ogg or mp3 through soundfile, once its length is known to be true.

libsndfile does not report truncation. Measured with libsndfile 1.2: a WAV cut to 100 bytes whose
header still declares 2 s opens as 28 frames (it clamps the length to the bytes present), and one
declaring 10 hours over 2 s of data opens as 2 s; a FLAC keeps the STREAMINFO total and fails with
"flac decoder lost sync" only when the read reaches the cut; an Ogg file's length is the last
complete page's position, so a cut one just looks shorter; an MP3's length comes from its Xing/Info
header (or is estimated from the file size without one). So, before anything is decoded:

* WAV: the RIFF ``data`` chunk's declared size is compared with the bytes present
  (``anymodal.checked_wav_layout``); a size left open (all ones, as a pipe writer leaves it) is not
  checked.
* Ogg: the last page must be whole and flagged end-of-stream (``anymodal.check_ogg_complete``).
* FLAC, Ogg, MP3: the last 64 declared frames must decode (one seek and one small read). If not,
  or when no length is declared (FLAC total 0, MP3 without Xing/Info/VBRI), the file is decoded
  block by block to count what it holds, keeping nothing. A declared length more than one codec
  frame beyond that count is truncation (``anymodal.CODEC_FRAME_SAMPLES``).

Nothing is allocated from a declared size: the count reads 1 MiB blocks, and an :class:`AudioFile`
reads only the frames it is asked for, within the verified length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import anymodal
from anymodal_audio.source import AudioFile, one_line

#: A frame count libsndfile gives for "unknown" (it reports INT64_MAX for a FLAC total of 0).
_UNKNOWN_FRAMES = 2**62
#: Frames read at the declared end to confirm the file reaches it.
_TAIL_FRAMES = 64
#: Floats per block when counting frames.
_COUNT_BLOCK_FLOATS = 2**18


def open_soundfile(path: Path, max_seconds: float) -> AudioFile:
    """Check ``path`` and return it as an :class:`AudioFile` of its verified length.

    ``max_seconds`` (the caller's length cap) bounds the count of a file that declares no length:
    counting stops one second past it, for the caller to refuse.
    InputError naming the file when it cannot be opened, declares an invalid rate, or is truncated.
    """
    anymodal.check_ogg_complete(path, modality="audio")
    info = _info(path)
    if anymodal.checked_wav_layout(path, modality="audio") is not None:
        frames = int(info.frames)
    else:
        frames = _verified_frames(path, info, int(min(max_seconds + 1, 2**40) * info.samplerate))
    return AudioFile(path, int(info.samplerate), int(info.channels), frames)


#: The highest sample rate read (studio rates top out at 768 kHz). A damaged header can declare
#: millions of Hz, and resampling from such a rate would need a filter table of hundreds of MiB.
MAX_SAMPLE_RATE = 768_000


def _info(path: Path) -> Any:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError, ValueError, OSError) as error:
        raise anymodal.InputError(
            f"audio file cannot be decoded: {path} ({one_line(error)})",
            hint=f"check that it is a valid {path.suffix.lower() or 'audio'} file, or re-export it",
        ) from error
    if not 0 < info.samplerate <= MAX_SAMPLE_RATE:
        raise anymodal.InputError(
            f"audio file declares an invalid sample rate {info.samplerate} Hz: {path}",
            hint=f"rates up to {MAX_SAMPLE_RATE:,} Hz are read; the header is damaged, re-export the file",
        )
    if info.channels <= 0:
        raise anymodal.InputError(f"audio file declares {info.channels} channels: {path}")
    return info


def _verified_frames(path: Path, info: Any, limit: int) -> int:
    declared = int(info.frames)
    known = declared < _UNKNOWN_FRAMES and (info.format != "MP3" or anymodal.mp3_declares_length(path))
    if known and _reaches(path, declared):
        return declared
    held = _count_frames(path, int(info.channels), limit)
    if known and held <= limit and declared - held > anymodal.CODEC_FRAME_SAMPLES.get(info.format, 0):
        raise anymodal.truncated_audio_error(
            path, declared / info.samplerate, held / info.samplerate, modality="audio"
        )
    return min(held, declared)


def _reaches(path: Path, declared: int) -> bool:
    """Whether the last :data:`_TAIL_FRAMES` of ``declared`` frames decode."""
    import soundfile

    count = min(declared, _TAIL_FRAMES)
    try:
        with soundfile.SoundFile(str(path)) as stream:
            stream.seek(declared - count)
            return bool(stream.read(count, dtype="float32", always_2d=True).shape[0] == count)
    except (soundfile.SoundFileError, RuntimeError, ValueError, OSError):
        return False


def _count_frames(path: Path, channels: int, limit: int) -> int:
    """Frames that decode from the start, counted in blocks (stopping past ``limit``). A block
    starts as NaN, so the frames a failing read wrote before its error still count."""
    import soundfile

    block = np.empty((max(_COUNT_BLOCK_FLOATS // channels, 1), channels), dtype=np.float32)
    held = 0
    try:
        with soundfile.SoundFile(str(path)) as stream:
            while held <= limit:
                block.fill(np.nan)
                try:
                    got = stream.read(out=block).shape[0]
                except (soundfile.SoundFileError, RuntimeError, ValueError):
                    written = np.isnan(block[:, 0])
                    return held + (int(np.argmax(written)) if written.any() else block.shape[0])
                held += got
                if got < block.shape[0]:
                    break
    except (soundfile.SoundFileError, RuntimeError, ValueError, OSError):
        pass
    return held
