"""Small media files for tests, written with PyAV: audio in any codec the PyAV build can encode,
optionally beside a video stream, short videos of flat grey frames, and long WAVs written in
bounded memory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import numpy as np
    from av.audio.stream import AudioStream


class MissingCodec(LookupError):
    """The PyAV build cannot encode a codec a fixture asked for (tests skip on it)."""


def write_av(
    path: str | Path,
    audio: np.ndarray | None,
    rate: int = 44100,
    codec: str = "aac",
    video_seconds: float = 0.0,
) -> Path:
    """Write ``audio`` (float ``[channels, samples]``, one or two channels, at ``rate`` Hz) with
    ``codec`` into the container ``path`` names, beside ``video_seconds`` of black 32x32 mpeg4
    video if asked; ``audio=None`` writes a video without sound. :class:`MissingCodec` when the
    PyAV build cannot encode ``codec`` or mpeg4."""
    import av
    import numpy as np

    for needed in [codec] * (audio is not None) + ["mpeg4"] * (video_seconds > 0):
        try:
            av.codec.Codec(needed, "w")
        except Exception as error:  # PyAV raises different classes across versions
            raise MissingCodec(f"this PyAV build has no {needed} encoder") from error
    path = Path(path)
    with av.open(str(path), "w") as container:
        video = None
        if video_seconds > 0:
            video = container.add_stream("mpeg4", rate=10)
            video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        if audio is not None:
            samples = np.atleast_2d(audio)
            layout = "mono" if samples.shape[0] == 1 else "stereo"
            stream = cast("AudioStream", container.add_stream(codec, rate=rate))
            stream.layout = layout
            step = stream.codec_context.frame_size or 1024
            for start in range(0, samples.shape[1], step):
                chunk = np.ascontiguousarray(samples[:, start : start + step], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate, frame.pts = rate, start
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        if video is not None:
            black = np.zeros((32, 32, 3), dtype=np.uint8)
            for _ in range(int(video_seconds * 10)):
                container.mux(video.encode(av.VideoFrame.from_ndarray(black, format="rgb24")))
            container.mux(video.encode(None))
    return path


def write_video(
    path: str | Path, frames: int = 20, width: int = 64, height: int = 48, rate: int = 10
) -> Path:
    """An mpeg4 video of ``frames`` flat grey frames, darkest first, each lighter than the last."""
    import av
    import numpy as np

    path = Path(path)
    step = 250 // max(frames - 1, 1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = np.full((height, width, 3), index * step, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_long_wav(path: str | Path, seconds: int, rate: int = 16000) -> Path:
    """A ``seconds``-long 16-bit mono WAV of seeded noise at ``rate`` Hz, written a minute at a
    time with the standard library's ``wave``, so that an hour-long test input never sits in memory."""
    import wave

    import numpy as np

    rng = np.random.default_rng(0)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        for start in range(0, seconds, 60):
            minute = min(60, seconds - start) * rate
            out.writeframes((rng.standard_normal(minute) * 3000).astype("<i2").tobytes())
    return Path(path)
