"""Decode a speech file into 16 kHz mono float32 samples, without an ffmpeg binary.

openai-whisper's own ``load_audio`` runs the ``ffmpeg`` CLI (``-ac 1 -ar 16000``). This module
asks ``decord.AudioReader`` for the same thing in process: decord links libav, so decoding,
libswresample's resampler and its downmix matrix are the ones the CLI uses. Two measured
differences, both from the output sample format (the CLI writes s16, decord float):

* a stereo file comes out as ``(L + R) / sqrt(2)``; the CLI's s16 output normalises the matrix to
  ``(L + R) / 2``. Whisper thus hears stereo 3 dB louder here (+0.038 on its normalised log-mel
  scale before the floor); mono files, most speech recordings, are unaffected. decord 0.6 cannot
  report the source channel count, and its ``mono=False`` output is corrupt for planar
  multichannel codecs (AAC, MP3), so the level is left as decoded.
* samples are not quantised to 16 bits nor clipped to [-1, 1).

Whisper looks at one 30-second window, so only the first :data:`WINDOW_SAMPLES` samples are kept;
the file's full duration is recorded. Decoding is bounded: audio longer than
:data:`MAX_SECONDS` is refused, and so is a file that holds less than its header declares (core's
``anymodal.preprocess.audio_headers`` gives the tolerances). A wav or flac is measured by soundfile
from its header (``lengths`` checks the header against the file); when it is longer than the
window, decord is given only its head, the window and :data:`HEAD_MARGIN_SECONDS` more (``head``),
which decodes bit for bit as the whole file would. For other kinds decord decodes the whole track
when it opens it, so a file larger than :data:`PROBE_ABOVE_BYTES` is first decoded at
:data:`PROBE_RATE` Hz (about 1/160 of the memory) to learn its length before the real decode; its
length is then compared with what the container declares (``anymodal.container_audio_seconds``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import anymodal
from anymodal_speech.head import flac_heads, wav_head
from anymodal_speech.lengths import SoundLength, checked_length

#: Whisper's sample rate and window (``whisper.audio.SAMPLE_RATE`` / ``N_SAMPLES``; a test
#: checks they agree, this module stays free of the torch import that whisper brings).
SAMPLE_RATE = 16000
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE

#: The longest audio the loader decodes. The encoder sees 30 s; an hour is far beyond any useful
#: input and keeps a stray multi-hour file from filling memory.
MAX_SECONDS = 3600.0

#: Files larger than this have their length probed at a low rate before the real decode. Below it
#: even an 8 kbit/s stream lasts about an hour, so the real decode is cheap whatever the content.
PROBE_ABOVE_BYTES = 4 * 2**20
PROBE_RATE = 100

#: Kinds whose length soundfile reads from the header, so that decord can be given only their head.
HEADER_KINDS = (".wav", ".flac")
#: Seconds decoded past the window from a head: decord's packets there are complete and final.
HEAD_MARGIN_SECONDS = 1.0

#: Audio files, and video containers whose sound track is used. ``plugin.FILE_KINDS`` repeats
#: this list so that registering costs no numpy import; a test checks the two agree.
FILE_KINDS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".mp4", ".mkv", ".webm", ".mov", ".avi")


@dataclass(frozen=True)
class DecodedSpeech:
    """A decoded file: ``samples`` is float32 ``[n]`` at 16 kHz mono, at most its first 30 s;
    ``duration`` is the whole file's length in seconds."""

    samples: np.ndarray
    duration: float
    path: Path

    @property
    def truncated(self) -> bool:
        """Whether the file is longer than the 30 s the encoder sees."""
        return self.duration * SAMPLE_RATE > WINDOW_SAMPLES


def load_speech(path: str | Path) -> DecodedSpeech:
    """Decode ``path`` to 16 kHz mono and keep its first 30 seconds.

    Raises :class:`anymodal.InputError` naming the file when it is missing, empty, of a kind not in
    :data:`FILE_KINDS`, corrupt, without an audio stream, holds no samples or non-finite ones, or
    lasts longer than :data:`MAX_SECONDS`.
    """
    # The runtime checked the file already; checking again costs a stat and keeps direct callers
    # safe. The size limit is the runtime's (model.max_input_mb), so none is applied here.
    file = anymodal.check_input_file(path, FILE_KINDS, modality="speech", max_mb=math.inf)
    suffix = file.suffix.lower()
    length = _header_length(file) if suffix in HEADER_KINDS else None
    if length is not None and length.duration > WINDOW_SECONDS + HEAD_MARGIN_SECONDS:
        return _decode_head(file, length)
    if suffix in (".ogg", ".opus"):
        anymodal.check_ogg_complete(file, modality="speech")
    if file.stat().st_size > PROBE_ABOVE_BYTES:
        probed = _decode(file, PROBE_RATE)
        if probed.shape[1] > MAX_SECONDS * PROBE_RATE:
            raise _too_long(file, probed.shape[1] / PROBE_RATE)
        del probed
    reader = _decode(file, SAMPLE_RATE)
    total = int(reader.shape[1])
    if total == 0:
        raise anymodal.InputError(f"speech file holds no samples: {file}", hint="re-export the recording")
    if total > MAX_SECONDS * SAMPLE_RATE:
        raise _too_long(file, total / SAMPLE_RATE)
    declared = _declared_seconds(file) if length is None else None
    if declared is not None and declared - total / SAMPLE_RATE > anymodal.CONTAINER_TOLERANCE_S:
        raise anymodal.truncated_audio_error(file, declared, total / SAMPLE_RATE, modality="speech")
    return _window(reader, total / SAMPLE_RATE, file)


def _header_length(file: Path) -> SoundLength | None:
    """A wav or flac's verified length (refusing a truncated or over-long one); ``None`` when
    soundfile cannot open it, so that decord's decode says what is wrong with it."""
    length = checked_length(file, MAX_SECONDS)
    if length is not None and length.duration > MAX_SECONDS:
        raise _too_long(file, length.duration)
    return length


def _decode_head(file: Path, length: SoundLength) -> DecodedSpeech:
    """The window of a wav or flac longer than it, decoded from the file's head only."""
    seconds = WINDOW_SECONDS + HEAD_MARGIN_SECONDS
    if length.layout is not None:
        heads = iter([wav_head(file, length.layout, seconds)])
    else:
        heads = flac_heads(file, seconds / length.duration)
    for head in heads:
        reader = _decode(file, SAMPLE_RATE, head)
        if reader.shape[1] >= seconds * SAMPLE_RATE:
            break
    return _window(reader, length.duration, file)


def _window(reader: Any, duration: float, file: Path) -> DecodedSpeech:
    """The first 30 s of an opened reader, checked finite, as the file's DecodedSpeech."""
    count = min(int(reader.shape[1]), WINDOW_SAMPLES)
    samples = np.ascontiguousarray(_first_samples(reader, count), dtype=np.float32).reshape(-1)
    if not np.isfinite(samples).all():
        raise anymodal.InputError(
            f"speech file decodes to non-finite samples (NaN or inf): {file}",
            hint="re-export the recording, e.g. as 16-bit wav",
        )
    return DecodedSpeech(samples, duration, file)


def _declared_seconds(file: Path) -> float | None:
    """What an mp4/m4a/mov/mkv/webm's sound track, or an mp3's Xing/Info/VBRI header, declares."""
    if file.suffix.lower() != ".mp3":
        return anymodal.container_audio_seconds(file)
    if not anymodal.mp3_declares_length(file):
        return None
    import soundfile

    try:
        info = soundfile.info(str(file))
    except (soundfile.SoundFileError, RuntimeError, ValueError, OSError):
        return None  # an old libsndfile without mp3, or a file it cannot open: nothing declared
    return float(info.frames / info.samplerate) if info.samplerate > 0 and info.frames < 2**62 else None


def _decode(file: Path, rate: int, head: bytes | None = None) -> Any:
    """An opened ``decord.AudioReader`` (the whole track decoded) at ``rate`` Hz mono, of the file
    or of ``head``, the first bytes of it."""
    import decord

    if anymodal.flac_sample_rate(file) == 0:  # decord would divide by it and kill the process (SIGFPE)
        raise anymodal.InputError(
            f"speech file declares a sample rate of 0 Hz: {file}", hint="re-export the recording, e.g. as wav"
        )
    decord.logging.set_level(decord.logging.QUIET)  # ffmpeg's own log lines would duplicate ours
    try:
        source = str(file) if head is None else io.BytesIO(head)
        return decord.AudioReader(source, sample_rate=rate, mono=True)
    except (decord.DECORDError, RuntimeError, OSError, ValueError) as error:
        message = str(error)
        if "find audio stream" in message:
            raise anymodal.InputError(
                f"speech file has no audio stream: {file}",
                hint="pass a recording with a sound track (is it an audio or video file at all?)",
            ) from error
        # decord's bare "Error reading <file>..." comes from a stream that yields no samples.
        reason = "no decodable audio in it" if message.startswith("Error reading") else _one_line(error)
        raise anymodal.InputError(
            f"speech file cannot be decoded: {file} ({reason})",
            hint=f"check that it is a valid {file.suffix.lower() or 'audio'} file, or re-export it as wav",
        ) from error


def _first_samples(reader: Any, count: int) -> np.ndarray:
    """The first ``count`` samples of an opened reader, ``[1, count]``.

    decord 0.6 keeps the decoded track as a numpy array (``_array``) and answers ``reader[a:b]``
    through a Python list of every index, which took 36 of the 45 ms a 20-second file cost
    (benchmarks/speech.py); the array is read directly when it is there.
    """
    decoded = getattr(reader, "_array", None)
    if isinstance(decoded, np.ndarray) and decoded.ndim == 2 and decoded.shape[1] >= count:
        return decoded[:, :count]
    return np.asarray(reader[0:count].asnumpy())


def _too_long(file: Path, seconds: float) -> anymodal.InputError:
    return anymodal.InputError(
        f"speech file is too long: {file} lasts {seconds:.0f} s, the limit is {MAX_SECONDS:g} s",
        hint=f"Whisper's encoder hears the first {WINDOW_SECONDS} s only; cut the part you want to ask about",
    )


def _one_line(error: BaseException) -> str:
    """The last non-empty line of a library's message, without decord's ``[time] file:line:`` prefix."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    if text.startswith("["):
        text = text.split("] ", 1)[-1]
        text = text.split(": ", 1)[-1] if ".cc:" in text.split(": ", 1)[0] else text
    if text.startswith("ERROR opening:") and ", " in text:
        text = text.rsplit(", ", 1)[-1]  # "ERROR opening: <path>, <libav's reason>": the path is ours
    return text
