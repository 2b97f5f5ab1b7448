"""Opening real videos written by the test: which frames are read, and what is refused."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from anymodal_video import decode
from anymodal_video.decode import open_video
from anymodal_video.sampling import plan_clips

import anymodal

MakeVideo = Callable[..., Path]
FrameIndex = Callable[[np.ndarray], int]


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        (10, [(0, 9)] * 5),  # 1 s: every clip covers the whole video
        (20, [(0, 19)] * 5),  # 2 s: exactly one clip long
        (65, [(0, 19), (12, 31), (23, 42), (34, 53), (45, 64)]),  # 6.5 s
    ],
)
def test_the_sampled_frames_are_the_ones_decoded(
    make_video: MakeVideo, frame_index: FrameIndex, frames: int, expected: list[tuple[int, int]]
) -> None:
    video = open_video(make_video(frames, fps=10))
    assert (video.num_frames, video.fps, video.height, video.width) == (frames, 10.0, 48, 64)
    assert video.duration == Fraction(frames, 10)
    plan = plan_clips(video.num_frames, video.fps)
    assert [clip.frames for clip in plan] == expected
    for clip in plan:
        decoded = video.read_frames(clip.frames)
        assert decoded.shape == (2, 48, 64, 3) and decoded.dtype == np.uint8
        assert tuple(frame_index(frame) for frame in decoded) == clip.frames


def test_audio_only_mp4_has_no_video_stream(audio_only_mp4: Path) -> None:
    with pytest.raises(anymodal.InputError, match="has no video stream") as caught:
        open_video(audio_only_mp4)
    assert str(audio_only_mp4) in str(caught.value)


def test_wav_renamed_to_mp4_has_no_video_stream(tmp_path: Path) -> None:
    import wave

    path = tmp_path / "speech.mp4"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(np.zeros(8000, np.int16).tobytes())
    with pytest.raises(anymodal.InputError, match="has no video stream") as caught:
        open_video(path)
    assert str(path) in str(caught.value)


def test_corrupt_file_is_refused_quietly(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(anymodal.InputError, match="cannot decode video file") as caught:
        open_video(path)
    assert str(path) in str(caught.value)
    assert "Invalid data" in str(caught.value)  # FFmpeg's reason, captured from fd 2
    assert capfd.readouterr().err == ""  # ... and not printed


def test_too_long_video_is_refused_before_decoding(
    make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_video(25)  # 2.5 s
    monkeypatch.setattr(decode, "MAX_DURATION_S", 2)
    monkeypatch.setattr(decode.VideoFile, "read_frames", _no_decoding)
    with pytest.raises(anymodal.InputError, match="too long") as caught:
        open_video(path)
    assert str(path) in str(caught.value)
    assert "lasts 2.50 s, the limit is 2.00 s" in str(caught.value)


def test_too_large_frames_are_refused(make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_video(5)
    monkeypatch.setattr(decode, "MAX_FRAME_PIXELS", 64 * 48 - 1)
    with pytest.raises(anymodal.InputError, match="frames are too large") as caught:
        open_video(path)
    assert str(path) in str(caught.value) and "64x48" in str(caught.value)


def test_implausible_aspect_ratio_is_refused(make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_video(5)
    monkeypatch.setattr(decode, "MAX_ASPECT_RATIO", 1.25)  # 64x48 is 1.33
    with pytest.raises(anymodal.InputError, match="implausible shape") as caught:
        open_video(path)
    assert str(path) in str(caught.value)


def _no_decoding(self: decode.VideoFile, indices: object) -> np.ndarray:
    raise AssertionError("the duration cap must be checked before any frame is decoded")
