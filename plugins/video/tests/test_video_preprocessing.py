"""The video tensor: shape, values against a computation by hand, crop offsets, options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import decord
import pytest
import torch
import torch.nn.functional as F
from anymodal_video.decode import open_video
from anymodal_video.preprocessing import crop_offsets, preprocess_video, short_side_scale

import anymodal

MakeVideo = Callable[..., Path]

# ImageBind's (CLIP's) constants, written out so the check does not reuse the code under test.
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def _by_hand(path: Path, indices: list[int], scaled: tuple[int, int]) -> torch.Tensor:
    """Frames decoded straight from decord -> ``[T, 3, H', W']`` scaled and normalised."""
    frames = decord.VideoReader(str(path)).get_batch(indices).asnumpy()
    clip = torch.tensor(frames, dtype=torch.float32).permute(0, 3, 1, 2) / 255.0  # [T, 3, H, W]
    clip = F.interpolate(clip, size=scaled, mode="bilinear", align_corners=False)
    return (clip - MEAN) / STD


def test_landscape_video_matches_a_computation_by_hand(make_video: MakeVideo) -> None:
    path = make_video(65, fps=10, width=96, height=64)  # 6.5 s; scaled to 224 x 336
    out = preprocess_video(open_video(path))
    assert out.shape == (15, 3, 2, 224, 224) and out.dtype == torch.float32
    expected = _by_hand(path, [12, 31], (224, 336))  # clip 1 samples frames 12 and 31
    for crop, left in enumerate((0, 56, 112)):
        view = expected[:, :, :, left : left + 224].permute(1, 0, 2, 3)  # -> [3, T, 224, 224]
        torch.testing.assert_close(out[3 + crop], view, atol=1e-5, rtol=0)


def test_portrait_video_crops_along_the_height(make_video: MakeVideo) -> None:
    path = make_video(30, fps=10, width=64, height=100)  # scaled to 350 x 224; crops at 0, 63, 126
    out = preprocess_video(open_video(path))
    assert out.shape == (15, 3, 2, 224, 224)
    expected = _by_hand(path, [0, 19], (350, 224))  # clip 0 samples frames 0 and 19
    for crop, top in enumerate((0, 63, 126)):
        view = expected[:, :, top : top + 224, :].permute(1, 0, 2, 3)
        torch.testing.assert_close(out[crop], view, atol=1e-5, rtol=0)


def test_a_video_shorter_than_a_clip_repeats_its_one_clip(make_video: MakeVideo) -> None:
    out = preprocess_video(open_video(make_video(7, fps=10)))  # 0.7 s
    assert out.shape == (15, 3, 2, 224, 224)
    for clip in range(1, 5):
        assert torch.equal(out[3 * clip : 3 * clip + 3], out[0:3])
    assert not torch.equal(out[0, :, 0], out[0, :, 1])  # frames 0 and 6 differ


def test_a_single_frame_video_works(make_video: MakeVideo) -> None:
    out = preprocess_video(open_video(make_video(1, fps=10)))
    assert out.shape == (15, 3, 2, 224, 224)
    assert torch.equal(out[:, :, 0], out[:, :, 1])


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (224, 336, [(0, 0), (0, 56), (0, 112)]),
        (224, 350, [(0, 0), (0, 63), (0, 126)]),  # ceil(126 / 2) = 63
        (225, 224, [(0, 0), (1, 0), (1, 0)]),  # ceil(1 / 2) = 1 and L - 224 = 1
        (224, 224, [(0, 0), (0, 0), (0, 0)]),
    ],
)
def test_crop_offsets(height: int, width: int, expected: list[tuple[int, int]]) -> None:
    assert crop_offsets(height, width, 224, 3) == expected


def test_one_crop_is_the_centre_one() -> None:
    assert crop_offsets(224, 351, 224, 1) == [(0, 64)]  # ceil(127 / 2)


@pytest.mark.parametrize(
    ("height", "width", "scaled"),
    [(64, 96, (224, 336)), (64, 100, (224, 350)), (100, 64, (350, 224)), (48, 48, (224, 224))],
)
def test_short_side_scale_floors_the_long_side(height: int, width: int, scaled: tuple[int, int]) -> None:
    assert short_side_scale(torch.zeros(3, 2, height, width), 224).shape[-2:] == scaled


def test_options_change_the_shape(make_video: MakeVideo) -> None:
    video = open_video(make_video(40, fps=10))
    out = preprocess_video(video, clips=2, clip_duration=1.5, frames_per_clip=3, size=112, crops=1)
    assert out.shape == (2, 3, 3, 112, 112)


def test_bad_options_are_a_config_error_naming_every_key(make_video: MakeVideo) -> None:
    video = open_video(make_video(5))
    with pytest.raises(anymodal.ConfigError) as caught:
        preprocess_video(video, clips=0, clip_duration=-1.0, crops=2)
    issues = caught.value.issues
    assert len(issues) == 3
    assert any("preprocess.clips" in issue for issue in issues)
    assert any("preprocess.clip_duration" in issue for issue in issues)
    assert any("preprocess.crops" in issue for issue in issues)
