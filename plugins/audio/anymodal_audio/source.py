"""What the loader hands the preprocessor: decoded samples in memory, or a checked file read on demand.

* :class:`DecodedAudio` holds float32 ``[channels, samples]`` (decord's output, or a whole file).
* :class:`AudioFile` is a wav/flac/ogg/mp3 file whose length soundfile has checked against its
  header (``soundfile_source``); :meth:`AudioFile.read` decodes only the frames asked for, by a
  seek and a read, so the preprocessor reads three 2-second clips of an hour-long file, not the hour.

Both give ``sample_rate``, ``frames``, ``channels``, ``duration`` and ``read(start, stop)``.

A seek and a read give exactly the samples a whole-file read gives for wav, flac and ogg (Vorbis,
Opus). For mp3 they may differ by one float32 rounding (≤ 1.2e-7, measured with libsndfile 1.2):
libmpg123's output depends on how the stream is cut into reads, a sequential read in blocks
differs from one whole read in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import anymodal

#: What soundfile raises for a file it cannot read (imported lazily, so named here by catching).
_READ_ERRORS = (RuntimeError, ValueError, OSError)


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded file: ``samples`` is float32 ``[channels, samples]`` at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int
    path: Path

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.sample_rate

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)``, ``[channels, n]`` (a view)."""
        return self.samples[:, start:stop]


@dataclass(frozen=True)
class AudioFile:
    """A sound file soundfile reads, already checked: ``frames`` is what it verifiably holds."""

    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def read(self, start: int, stop: int) -> np.ndarray:
        """Decode frames ``[start, stop)`` (clamped to the file) as float32 ``[channels, n]``.

        InputError naming the file when the data there does not decode, ends early, or holds NaN
        or infinite samples.
        """
        import soundfile

        start, stop = max(start, 0), min(stop, self.frames)
        if stop <= start:
            return np.zeros((self.channels, 0), dtype=np.float32)
        # The block starts as NaN: a decoder that reports an error only after delivering every frame
        # asked for (libsndfile's FLAC at the end of a stream of unknown length) still gave them.
        data = np.full((stop - start, self.channels), np.nan, dtype=np.float32)
        try:
            with soundfile.SoundFile(str(self.path)) as stream:
                if start:
                    stream.seek(start)
                got = stream.read(out=data).shape[0]
        except (soundfile.SoundFileError, *_READ_ERRORS) as error:
            if np.isnan(data[-1]).any():
                raise anymodal.InputError(
                    f"audio file cannot be decoded: {self.path} ({one_line(error)})", hint="re-export it"
                ) from error
            got = data.shape[0]
        if got != stop - start:
            raise anymodal.InputError(
                f"audio file cannot be decoded: {self.path} (frames {start}-{stop} of {self.frames} "
                f"gave {got})",
                hint="re-export it",
            )
        samples = np.ascontiguousarray(data.T)
        check_finite(samples, self.path)
        return samples

    def decode(self) -> DecodedAudio:
        """The whole file in memory."""
        return DecodedAudio(self.read(0, self.frames), self.sample_rate, self.path)


def check_finite(samples: np.ndarray, path: Path) -> None:
    if not np.isfinite(samples).all():
        raise anymodal.InputError(
            f"audio file decodes to non-finite samples (NaN or inf): {path}", hint="re-export it"
        )


def one_line(error: BaseException) -> str:
    """The last non-empty line of a library's message (decord prefixes a C++ source location)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text.split("] ", 1)[-1] if text.startswith("[") else text
