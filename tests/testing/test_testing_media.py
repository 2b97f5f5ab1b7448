"""anymodal.testing.media writes what it says, and says when PyAV lacks a codec."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from anymodal.testing import media


def test_audio_beside_video_in_one_container(tmp_path: Path):
    tone = np.sin(np.arange(16000) * 0.1).astype(np.float32)[None]
    path = media.write_av(tmp_path / "clip.mp4", tone, rate=16000, video_seconds=1.0)
    with av.open(str(path)) as container:
        kinds = sorted(stream.type for stream in container.streams)
        frames = sum(1 for _ in container.decode(video=0))
    assert kinds == ["audio", "video"] and frames == 10


def test_video_frames_brighten(tmp_path: Path):
    path = media.write_video(tmp_path / "v.mp4", frames=5)
    with av.open(str(path)) as container:
        means = [frame.to_ndarray(format="rgb24").mean() for frame in container.decode(video=0)]
    assert len(means) == 5 and means == sorted(means) and means[-1] - means[0] > 200


def test_a_codec_pyav_cannot_encode_is_missing_codec(tmp_path: Path):
    with pytest.raises(media.MissingCodec, match="no-such-codec"):
        media.write_av(tmp_path / "x.mka", np.zeros((1, 100), np.float32), codec="no-such-codec")
    assert not (tmp_path / "x.mka").exists()
