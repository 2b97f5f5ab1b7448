"""How long a wav or flac really is: its header's length, checked against what the file holds.

libsndfile does not report truncation (measured with libsndfile 1.2): a WAV cut short, or whose
header claims hours over seconds of data, opens at the length of the bytes present; a FLAC keeps
its STREAMINFO total and fails only when a read reaches the cut. So:

* WAV: the RIFF ``data`` chunk's declared size is compared with the bytes present
  (``anymodal.checked_wav_layout``); a size left open (all ones, as a pipe writer leaves it) is not
  checked.
* FLAC: the last 64 declared frames must decode (a seek and a small read). If not, or when the
  total is 0 ("unknown"), the file is decoded block by block to count what it holds, keeping
  nothing; a declared total more than one FLAC frame past that count is truncation.

Nothing is allocated from a declared size. The header checks are core's (``anymodal.checked_wav_layout``,
``anymodal.CODEC_FRAME_SAMPLES``); the soundfile reads below are the same as in
``anymodal_audio.soundfile_source`` and stay a copy because core does not depend on soundfile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import anymodal

#: A frame count libsndfile gives for "unknown" (it reports INT64_MAX for a FLAC total of 0).
_UNKNOWN_FRAMES = 2**62
#: Frames read at the declared end to confirm the file reaches it.
_TAIL_FRAMES = 64
#: Floats per block when counting frames.
_COUNT_BLOCK_FLOATS = 2**18


@dataclass(frozen=True)
class SoundLength:
    """A wav or flac file's verified length, and (for a wav) where its samples are."""

    sample_rate: int
    channels: int
    frames: int
    layout: anymodal.WavLayout | None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def checked_length(path: Path, max_seconds: float) -> SoundLength | None:
    """The verified length of ``path``; ``None`` when soundfile cannot open it (or finds no valid
    rate and channel count). Counting a file that declares none stops one second past
    ``max_seconds``, for the caller to refuse. InputError naming the file when it holds less than
    its header says."""
    info = _info(path)
    if info is None:
        return None
    layout = anymodal.checked_wav_layout(path, modality="speech")
    if layout is not None:
        frames = int(info.frames)
    else:
        frames = _verified_frames(path, info, int(min(max_seconds + 1, 2**40) * info.samplerate))
    return SoundLength(int(info.samplerate), int(info.channels), frames, layout)


def _info(path: Path) -> Any:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError, ValueError, OSError):
        return None
    return info if info.samplerate > 0 and info.channels > 0 else None


def _verified_frames(path: Path, info: Any, limit: int) -> int:
    declared = int(info.frames)
    known = declared < _UNKNOWN_FRAMES
    if known and _reaches(path, declared):
        return declared
    held = _count_frames(path, int(info.channels), limit)
    if known and held <= limit and declared - held > anymodal.CODEC_FRAME_SAMPLES.get(info.format, 0):
        raise anymodal.truncated_audio_error(
            path, declared / info.samplerate, held / info.samplerate, modality="speech"
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
