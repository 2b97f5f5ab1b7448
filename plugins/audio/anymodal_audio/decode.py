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
naming the file and the cap. soundfile's header is checked before reading, and the read stops one
sample past the cap even if the header lies. decord decodes a whole track when it opens it, so the
length is taken first from the video stream (``decord.VideoReader`` reads only the index);
audio-only containers are checked after decoding, bounded meanwhile by core's input-size cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import anymodal

#: Longest audio the loader decodes, in seconds. ImageBind looks at three 2-second clips, so an
#: hour is far beyond useful input; the cap keeps a stray multi-hour file from filling memory.
MAX_AUDIO_SECONDS = 3600.0

#: The rate decord is asked for (ImageBind's rate), since decord cannot report the native one.
DECORD_SAMPLE_RATE = 16000

SOUNDFILE_KINDS = (".wav", ".flac", ".ogg")
MP3_KINDS = (".mp3",)
CONTAINER_KINDS = (".mp4", ".mkv", ".webm", ".mov", ".avi")
FILE_KINDS = SOUNDFILE_KINDS + MP3_KINDS + CONTAINER_KINDS


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded file: ``samples`` is float32 ``[channels, samples]`` at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int
    path: Path

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.sample_rate


def load_audio(path: Path) -> DecodedAudio:
    """Decode ``path`` (already checked by ``anymodal.check_input_file``) into a DecodedAudio.

    Raises InputError naming the file when it is corrupt, has no audio stream, holds no samples or
    non-finite samples, or is longer than :data:`MAX_AUDIO_SECONDS`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SOUNDFILE_KINDS or (suffix in MP3_KINDS and _soundfile_reads_mp3()):
        decoded = _decode_with_soundfile(path)
    else:
        decoded = _decode_with_decord(path)
    _check_plausible(decoded)
    return decoded


def _too_long(path: Path, seconds: float) -> anymodal.InputError:
    return anymodal.InputError(
        f"audio file is too long: {path} lasts {seconds:.0f} s, the limit is {MAX_AUDIO_SECONDS:g} s",
        hint="cut the part you want to ask about, e.g. to a few minutes",
    )


def _soundfile_reads_mp3() -> bool:
    import soundfile

    return "MP3" in soundfile.available_formats()


def _decode_with_soundfile(path: Path) -> DecodedAudio:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError, ValueError) as error:
        raise anymodal.InputError(f"audio file cannot be decoded: {path} ({_one_line(error)})") from error
    if info.samplerate <= 0:
        raise anymodal.InputError(f"audio file declares an invalid sample rate {info.samplerate}: {path}")
    if info.frames / info.samplerate > MAX_AUDIO_SECONDS:
        raise _too_long(path, info.frames / info.samplerate)
    limit = int(MAX_AUDIO_SECONDS * info.samplerate)
    try:
        # One frame past the cap tells a lying header from an honest one without reading it all.
        frames, rate = soundfile.read(str(path), frames=limit + 1, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, ValueError) as error:
        raise anymodal.InputError(f"audio file cannot be decoded: {path} ({_one_line(error)})") from error
    if frames.shape[0] > limit:
        raise _too_long(path, frames.shape[0] / rate)
    return DecodedAudio(np.ascontiguousarray(frames.T), int(rate), path)


def _decode_with_decord(path: Path) -> DecodedAudio:
    import decord

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
        samples = reader[:].asnumpy()
    except (decord.DECORDError, RuntimeError) as error:
        if "find audio stream" in str(error):
            raise anymodal.InputError(
                f"file has no audio stream: {path}", hint="pass a file with a sound track"
            ) from error
        raise anymodal.InputError(f"audio file cannot be decoded: {path} ({_one_line(error)})") from error
    samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
    if samples.shape[1] > MAX_AUDIO_SECONDS * DECORD_SAMPLE_RATE:
        raise _too_long(path, samples.shape[1] / DECORD_SAMPLE_RATE)
    return DecodedAudio(samples, DECORD_SAMPLE_RATE, path)


def _check_plausible(decoded: DecodedAudio) -> None:
    if decoded.samples.shape[1] == 0:
        raise anymodal.InputError(f"audio file holds no samples: {decoded.path}", hint="re-export it")
    if not np.isfinite(decoded.samples).all():
        raise anymodal.InputError(
            f"audio file decodes to non-finite samples (NaN or inf): {decoded.path}", hint="re-export it"
        )


def _one_line(error: BaseException) -> str:
    """The last non-empty line of a library's message (decord prefixes a C++ source location)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text.split("] ", 1)[-1] if text.startswith("[") else text
