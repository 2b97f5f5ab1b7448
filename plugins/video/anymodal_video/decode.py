"""Opening a video with decord, within bounds; every failure is an InputError naming the file.

Core has already checked that the file exists, is readable, non-empty, not too large and has a
video suffix. Here the content is checked, before any bulk decoding:

* the file must be as long as its container's structure says (:mod:`anymodal_video.container`),
  and hold as many frames as its header declares: a file cut short is refused as *truncated*,
  with what its header says and what it holds, before decord reads a packet;
* it must have a video stream with at least one frame and a plausible frame rate;
* it must last at most :data:`MAX_DURATION_S` (from the frame count and frame rate);
* its frames must have at most :data:`MAX_FRAME_PIXELS` pixels and an aspect ratio of at most
  :data:`MAX_ASPECT_RATIO`, since preprocessing scales the short side to 224 and a sliver of a
  video would scale to a huge tensor. decord exposes no frame size without decoding, so frame 0 is
  decoded on its own (FFmpeg bounds a single frame) and checked before anything else is read.

decord quirks handled here:

* Failures surface as ``DECORDError`` (e.g. "cannot find video stream"), ``RuntimeError``
  ("Error reading ...") or an ``AssertionError`` for a stream without frames, while FFmpeg's actual
  reason is printed to the process's stderr (file descriptor 2), not put in the exception. fd 2 is
  redirected to a temporary file while decord works, so a bad file does not spray FFmpeg log lines
  over a chat session, and the last line is quoted in the error.
* ``get_frame_timestamp`` with a slice decodes the whole video, and a global
  ``decord.bridge.set_bridge("torch")`` (pytorchvideo sets one on import) changes what
  ``get_batch`` returns; neither is relied on.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

import anymodal
from anymodal_video.container import MISSING_INDEX, Declared, read_declared

log = logging.getLogger(__name__)

#: Longest video accepted, in seconds (4 hours). Sampling reads 10 frames whatever the length, but
#: decord indexes every packet on open, and anything longer is more likely a mistake than a clip.
MAX_DURATION_S = 4 * 60 * 60
#: Most pixels per frame accepted: 8K DCI (8192 x 4320).
MAX_FRAME_PIXELS = 8192 * 4320
#: Widest long-to-short side ratio accepted; ultra-wide 32:9 is 3.6.
MAX_ASPECT_RATIO = 10.0
#: Decoding threads per video: only a handful of frames are decoded, so more threads buy nothing.
DECODE_THREADS = 2
#: How far a file's frames may fall short of the length its header declares before it counts as
#: cut short: this many seconds plus this fraction of the declared length.
LENGTH_SLACK_S = 1
LENGTH_SLACK = Fraction(1, 20)

# decord prefixes its log lines and messages with "[hh:mm:ss] /path/file.cc:123: ".
_DECORD_PREFIX = re.compile(r"^\[[\d:]+\]\s+\S+:\d+:\s+(Check failed: .*?\)\s+)?")


@dataclass
class VideoFile:
    """An opened, checked video. Frames are decoded on demand by :meth:`read_frames`."""

    path: Path
    num_frames: int
    fps: float
    height: int
    width: int
    reader: Any = field(repr=False)

    @property
    def duration(self) -> Fraction:
        """Length in seconds, ``num_frames / fps`` exactly (see :mod:`anymodal_video.sampling`)."""
        return Fraction(self.num_frames) / Fraction(self.fps)

    def read_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Decode the frames at ``indices`` (and only those): uint8 ``[len(indices), H, W, 3]`` RGB."""
        with _CapturedStderr() as stderr:
            try:
                batch = self.reader.get_batch(list(indices))
            except Exception as error:  # decord raises DECORDError, RuntimeError, ...
                reason = _reason(str(error), stderr.text(), path=self.path)
                raise anymodal.InputError(
                    f"cannot decode frames {list(indices)} of video file {self.path}: {reason}",
                    hint="the file may be truncated or corrupt; re-encode it (e.g. to H.264 .mp4)",
                ) from error
        frames = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise anymodal.InputError(
                f"decord returned frames of shape {frames.shape} ({frames.dtype}) for video file "
                f"{self.path}; expected [N, H, W, 3] uint8",
                hint="re-encode the video as 8-bit RGB/YUV (e.g. H.264 .mp4)",
            )
        return frames


def open_video(path: Path) -> VideoFile:
    """Open ``path`` with decord and check its stream, length and frame size (see module doc)."""
    decord = _import_decord()
    declared = read_declared(path)
    if declared is not None:
        _check_complete(path, declared)
    with _CapturedStderr() as stderr:
        try:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=DECODE_THREADS)
        except AssertionError as error:  # decord asserts a positive frame count
            raise anymodal.InputError(
                f"video file has no frames: {path}", hint="re-export the video"
            ) from error
        except Exception as error:  # decord raises DECORDError, RuntimeError, ...
            raise _open_error(path, error, stderr.text()) from error
        num_frames = len(reader)
        fps = float(reader.get_avg_fps())
    if stderr.text():
        log.debug("decord/FFmpeg said while opening %s: %s", path, stderr.text().strip())

    if not math.isfinite(fps) or fps <= 0:
        raise anymodal.InputError(
            f"video file has an implausible frame rate ({fps:g} fps): {path}",
            hint="re-encode the video with a constant frame rate",
        )
    duration = num_frames / fps
    if duration > MAX_DURATION_S:
        raise anymodal.InputError(
            f"video file is too long: {path} lasts {_length(Fraction(num_frames) / Fraction(fps))}, "
            f"the limit is {_length(MAX_DURATION_S)}",
            hint="cut the part you want to ask about into a shorter file",
        )
    if declared is not None:
        _check_frames(path, declared, num_frames, Fraction(fps))

    video = VideoFile(path, num_frames, fps, height=0, width=0, reader=reader)
    height, width = video.read_frames([0]).shape[1:3]
    if height * width > MAX_FRAME_PIXELS:
        raise anymodal.InputError(
            f"video frames are too large: {path} is {width}x{height}, the limit is "
            f"{MAX_FRAME_PIXELS:,} pixels per frame",
            hint="downscale the video (ImageBind sees it at 224 px anyway)",
        )
    if max(height, width) > MAX_ASPECT_RATIO * min(height, width):
        raise anymodal.InputError(
            f"video frames have an implausible shape: {path} is {width}x{height}, more than "
            f"{MAX_ASPECT_RATIO:g}:1",
            hint="crop the video to a normal aspect ratio",
        )
    video.height, video.width = int(height), int(width)
    return video


def _import_decord() -> Any:
    try:
        import decord
    except ImportError as error:
        raise anymodal.PluginError(
            f"the video plugin needs decord, which failed to import: {error}",
            hint="pip install 'decord>=0.6' (wheels exist for x86-64 Linux, Windows and Intel macOS)",
        ) from error
    return decord


def _open_error(path: Path, error: Exception, stderr: str) -> anymodal.InputError:
    message = str(error)
    if "cannot find video stream" in message:
        return anymodal.InputError(
            f"video file has no video stream: {path}",
            hint="is it audio only? pass audio files as audio",
        )
    return anymodal.InputError(
        f"cannot decode video file {path}: {_reason(message, stderr, path=path)}",
        hint="check that it is a complete, valid video; re-encode it (e.g. to H.264 .mp4)",
    )


def _reason(message: str, stderr: str, *, path: Path) -> str:
    """The most telling line of what decord and FFmpeg said, without decord's source location."""
    lines = [line.strip() for line in (stderr + "\n" + message).splitlines() if line.strip()]
    # decord's own "Error reading <path>..." says nothing FFmpeg's log line did not say better.
    useful = [line for line in lines if not line.startswith("Error reading")] or lines
    if not useful:
        return "unknown decoder error"
    reason = _DECORD_PREFIX.sub("", useful[-1])
    reason = reason.replace(f"ERROR opening: {path}, ", "")
    return reason[:200]


def _check_complete(path: Path, declared: Declared) -> None:
    """Refuse a file shorter than its container's structure says, or one declaring more frames
    than it has bytes, before decord indexes it (decord reserves memory for every frame FFmpeg
    expects, and a reservation that fails aborts the process)."""
    held = path.stat().st_size
    implied = declared.frames_implied
    if declared.seconds is not None and declared.seconds > MAX_DURATION_S:
        raise anymodal.InputError(
            f"video file is too long: its header says it lasts {_length(declared.seconds)}, "
            f"the limit is {_length(MAX_DURATION_S)}: {path}",
            hint="cut the part you want to ask about into a shorter file",
        )
    if implied is not None and implied > held:  # every frame takes at least a byte
        says = _length(declared.seconds, implied)
        raise _truncated(path, f"its header says {says}, it holds {_bytes(held)}")
    if declared.end > held:
        length = _length(declared.seconds, declared.frames)
        if declared.missing is MISSING_INDEX:
            says = f"at least {_bytes(declared.end)} (its media data, then {MISSING_INDEX})"
        else:
            says = f"{length} in {_bytes(declared.end)}" if length else _bytes(declared.end)
        raise _truncated(path, f"its header says {says}, it holds {_bytes(held)}")
    if declared.missing is not None:
        raise _truncated(path, f"it lacks {declared.missing}; it holds {_bytes(held)}")


def _check_frames(path: Path, declared: Declared, num_frames: int, fps: Fraction) -> None:
    """Refuse a file whose frames fall short of what its container declares.

    An MP4 lists every sample, so its count must be met exactly. A length (an MP4 video track's,
    or a Matroska Duration, which covers every track, so an audio track may outlast the video)
    must be covered to within :data:`LENGTH_SLACK_S` plus :data:`LENGTH_SLACK` of it. An AVI's
    frame count includes dropped (empty) frames that FFmpeg skips, so it is not compared.
    """
    if declared.container == "AVI":
        return
    held = Fraction(num_frames) / fps
    fewer = declared.frames is not None and num_frames < declared.frames
    shorter = declared.seconds is not None and held < declared.seconds * (1 - LENGTH_SLACK) - LENGTH_SLACK_S
    if fewer or shorter:
        says = _length(declared.seconds, declared.frames)
        raise _truncated(path, f"its header says {says}, it holds {_length(held, num_frames)}")


def _truncated(path: Path, what: str) -> anymodal.InputError:
    return anymodal.InputError(
        f"video file is truncated: {what}: {path}",
        hint="the file was cut short (an interrupted download, copy or recording?); fetch or export it again",
    )


def _length(seconds: float | Fraction | None, frames: int | None = None) -> str:
    """The one way lengths are written here: ``10.00 s (300 frames)``, ``1:02:03.4`` from a
    minute on; rounded down, so a video just over a limit does not read as equal to it."""
    text = ""
    if seconds is not None:
        if seconds < 60:
            text = f"{math.floor(seconds * 100) / 100:.2f} s"
        else:
            tenths = math.floor(seconds * 10)
            text = f"{tenths // 36000}:{tenths % 36000 // 600:02d}:{tenths % 600 / 10:04.1f}"
    if frames is not None:
        count = f"{frames:,} frame" + ("" if frames == 1 else "s")
        text = f"{text} ({count})" if text else count
    return text


def _bytes(count: int) -> str:
    """``19,523 bytes``: the one way file sizes are written here."""
    return f"{count:,} byte" + ("" if count == 1 else "s")


class _CapturedStderr:
    """Redirects file descriptor 2 (where FFmpeg and decord log) to a temporary file.

    Python's ``sys.stderr`` object is flushed first so nothing of ours is caught. If fd 2 cannot be
    duplicated (no console, exotic hosts), nothing is redirected and :meth:`text` returns "".
    """

    def __init__(self) -> None:
        self._saved: int | None = None
        self._sink: Any = None
        self._text = ""

    def __enter__(self) -> _CapturedStderr:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            self._saved = os.dup(2)
        except OSError:
            return self
        self._sink = tempfile.TemporaryFile()
        os.dup2(self._sink.fileno(), 2)
        return self

    def text(self) -> str:
        """What was written to fd 2 so far."""
        if self._sink is not None:
            self._sink.seek(0)
            self._text = self._sink.read().decode("utf-8", errors="replace")
        return self._text

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._saved is None:
            return
        self.text()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None
