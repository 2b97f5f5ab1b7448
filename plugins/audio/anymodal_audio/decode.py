"""Decode audio files and the audio track of videos into float32 ``[channels, samples]``.

Which library decodes what, and why:

* wav, flac, ogg (and mp3 where libsndfile >= 1.1 reads it) go through soundfile. Its header gives
  the length before anything is decoded, channels come out intact, and the file's own rate is kept
  (``preprocessing`` resamples).
* video containers (mp4, mkv, webm, mov, avi), and mp3 without libsndfile support, go through
  ``decord.AudioReader``. decord 0.6 returns corrupt samples for multichannel tracks (NaN and
  ~1e38 values for planar stereo AAC and MP3, found while writing this plugin) and does not report
  the native rate, so it is asked for ffmpeg's mono downmix at 16 kHz (ffmpeg's own windowed-sinc
  resampler). ImageBind reads channel 0 of a multichannel file; for multichannel video tracks
  this plugin therefore sees ``(L + R)/√2`` instead, an accepted difference.

Decoding is bounded: audio longer than :data:`MAX_AUDIO_SECONDS` is refused with an InputError
naming the file and the cap, and so is a file that holds less than its header declares
(``soundfile_source`` and core's ``anymodal.preprocess.audio_headers`` say how each container is
checked). Files soundfile reads come back from :func:`open_audio` as an :class:`AudioFile`, checked
but not decoded: the preprocessor reads only the clips it samples. decord decodes a whole track
when it opens it, so the length is taken first from the video stream (``decord.VideoReader`` reads
only the index); audio-only containers are checked after decoding, bounded meanwhile by core's
input-size cap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import anymodal
from anymodal_audio.soundfile_source import open_soundfile
from anymodal_audio.source import AudioFile, DecodedAudio, check_finite, one_line

__all__ = ["FILE_KINDS", "MAX_AUDIO_SECONDS", "AudioFile", "DecodedAudio", "load_audio", "open_audio"]

#: Longest audio the loader decodes, in seconds. ImageBind looks at three 2-second clips, so an
#: hour is far beyond useful input; the cap keeps a stray multi-hour file from filling memory.
MAX_AUDIO_SECONDS = 3600.0

#: The rate decord is asked for (ImageBind's rate), since decord cannot report the native one.
DECORD_SAMPLE_RATE = 16000

SOUNDFILE_KINDS = (".wav", ".flac", ".ogg")
MP3_KINDS = (".mp3",)
CONTAINER_KINDS = (".mp4", ".mkv", ".webm", ".mov", ".avi")
FILE_KINDS = SOUNDFILE_KINDS + MP3_KINDS + CONTAINER_KINDS


def open_audio(path: Path) -> AudioFile | DecodedAudio:
    """What the plugin's loader returns for ``path`` (already checked by ``anymodal.check_input_file``).

    wav/flac/ogg (and mp3 where libsndfile reads it) give an :class:`AudioFile` whose length is
    checked against its header and which decodes only what is read from it; other kinds are decoded
    by decord into a :class:`DecodedAudio`. Raises InputError naming the file when it is corrupt or
    truncated, has no audio stream, holds no samples or non-finite samples, or is longer than
    :data:`MAX_AUDIO_SECONDS`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SOUNDFILE_KINDS or (suffix in MP3_KINDS and _soundfile_reads_mp3()):
        source = open_soundfile(path, MAX_AUDIO_SECONDS)
        if source.duration > MAX_AUDIO_SECONDS:
            raise _too_long(path, source.duration)
        if source.frames == 0:
            raise _no_samples(path)
        return source
    decoded = _decode_with_decord(path)
    _check_plausible(decoded)
    return decoded


def load_audio(path: Path) -> DecodedAudio:
    """Decode ``path`` whole into a DecodedAudio (float32 ``[channels, samples]`` at the file's rate
    for soundfile kinds, 16 kHz mono for decord's); the same checks as :func:`open_audio`."""
    source = open_audio(path)
    return source.decode() if isinstance(source, AudioFile) else source


def _too_long(path: Path, seconds: float) -> anymodal.InputError:
    return anymodal.InputError(
        f"audio file is too long: {path} lasts {seconds:.0f} s, the limit is {MAX_AUDIO_SECONDS:g} s",
        hint="cut the part you want to ask about, e.g. to a few minutes",
    )


def _soundfile_reads_mp3() -> bool:
    import soundfile

    return "MP3" in soundfile.available_formats()


def _decode_with_decord(path: Path) -> DecodedAudio:
    import decord

    if anymodal.flac_sample_rate(path) == 0:  # decord would divide by it and kill the process (SIGFPE)
        raise anymodal.InputError(f"audio file declares a sample rate of 0 Hz: {path}", hint="re-export it")
    decord.logging.set_level(decord.logging.QUIET)  # ffmpeg's own log lines would duplicate ours
    try:
        video = decord.VideoReader(str(path))
        fps = video.get_avg_fps()
        if fps > 0 and len(video) / fps > MAX_AUDIO_SECONDS:
            raise _too_long(path, len(video) / fps)
        del video
    except (decord.DECORDError, RuntimeError):
        pass  # no video stream (or an unreadable one): the audio decode below reports problems
    try:
        reader = decord.AudioReader(str(path), sample_rate=DECORD_SAMPLE_RATE, mono=True)
        samples = _all_samples(reader)
    except (decord.DECORDError, RuntimeError) as error:
        if "find audio stream" in str(error):
            raise anymodal.InputError(
                f"file has no audio stream: {path}", hint="pass a file with a sound track"
            ) from error
        raise anymodal.InputError(f"audio file cannot be decoded: {path} ({one_line(error)})") from error
    samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
    held = samples.shape[1] / DECORD_SAMPLE_RATE
    if held > MAX_AUDIO_SECONDS:
        raise _too_long(path, held)
    declared = anymodal.container_audio_seconds(path)
    if declared is not None and declared - held > anymodal.CONTAINER_TOLERANCE_S:
        raise anymodal.truncated_audio_error(path, declared, held, modality="audio")
    return DecodedAudio(samples, DECORD_SAMPLE_RATE, path)


def _all_samples(reader: Any) -> np.ndarray:
    """Every sample of an opened reader. decord 0.6 keeps the decoded track as a numpy array
    (``_array``) and answers ``reader[:]`` through a Python list of every index (36 bytes an
    index: 2 GB for an hour at 16 kHz), so the array is taken directly when it is there."""
    decoded = getattr(reader, "_array", None)
    if isinstance(decoded, np.ndarray) and decoded.ndim == 2:
        return decoded
    return np.asarray(reader[:].asnumpy())


def _no_samples(path: Path) -> anymodal.InputError:
    return anymodal.InputError(f"audio file holds no samples: {path}", hint="re-export it")


def _check_plausible(decoded: DecodedAudio) -> None:
    if decoded.samples.shape[1] == 0:
        raise _no_samples(decoded.path)
    check_finite(decoded.samples, decoded.path)
