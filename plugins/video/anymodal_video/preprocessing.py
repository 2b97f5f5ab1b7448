"""A loaded video -> ImageBind's video tensor ``[clips * crops, 3, frames_per_clip, size, size]``.

Per clip, in the reference's order (ImageBind ``load_and_transform_video_data``):

1. the clip's sampled frames, uint8 ``[T, H, W, 3]`` -> float32 ``[3, T, H, W]`` / 255;
2. ShortSideScale: bilinear ``interpolate`` (``align_corners=False``, no antialias) so the short
   side is ``size`` and the long side ``floor(long / short * size)``;
3. normalise each channel with CLIP's mean and std (subtract, then divide, in float32);
4. ``crops`` crops of ``size`` along the long axis at offsets 0, ``ceil((L - size) / 2)`` and
   ``L - size`` (one crop: the centre one).

Output order is clip-major: clip 0 crops 0, 1, 2, then clip 1, ... With the defaults that is
``[15, 3, 2, 224, 224]``, which the encoder takes as 15 views to average.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import anymodal
from anymodal_video.decode import VideoFile
from anymodal_video.sampling import as_fraction, plan_clips

#: Crop positions along the long axis for each supported number of crops, as in ImageBind's
#: ``SpatialCrop``: 0 = start, 1 = centre, 2 = end.
CROP_POSITIONS = {1: (1,), 3: (0, 1, 2)}


def preprocess_video(
    video: VideoFile,
    clips: int = 5,
    clip_duration: float = 2.0,
    frames_per_clip: int = 2,
    size: int = 224,
    crops: int = 3,
) -> torch.Tensor:
    """Sample, decode and transform ``video``: float32 ``[clips * crops, 3, frames_per_clip, size, size]``.

    Options come from the config key ``modalities.video.preprocess``. Only the sampled frames are
    decoded; clips that sample the same frames (short videos) are transformed once.
    """
    duration = _check_options(clips, clip_duration, frames_per_clip, size, crops)
    plan = plan_clips(
        video.num_frames,
        video.fps,
        clips=clips,
        clip_duration=duration,
        frames_per_clip=frames_per_clip,
    )
    views: list[torch.Tensor] = []
    done: dict[tuple[int, ...], torch.Tensor] = {}
    for clip in plan:
        if clip.frames not in done:
            done[clip.frames] = transform_clip(_read_unique(video, clip.frames), size=size, crops=crops)
        views.append(done[clip.frames])
    return torch.cat(views, dim=0).contiguous()


def transform_clip(frames: np.ndarray, *, size: int = 224, crops: int = 3) -> torch.Tensor:
    """uint8 frames ``[T, H, W, 3]`` -> float32 ``[crops, 3, T, size, size]`` (steps 1-4 above)."""
    clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).to(torch.float32) / 255.0
    clip = short_side_scale(clip, size)
    clip = normalize(clip)
    return torch.stack(spatial_crops(clip, size, crops), dim=0)


def short_side_scale(clip: torch.Tensor, size: int) -> torch.Tensor:
    """``[C, T, H, W]`` -> ``[C, T, H', W']`` with ``min(H', W') == size``, bilinear, no antialias.

    The long side is ``floor(long / short * size)`` computed in float64, as the reference does.
    ``C`` plays the batch and ``T`` the channel dimension of ``interpolate``, also as the reference
    does; bilinear filtering treats every (c, t) plane alike, so this only keeps the arithmetic equal.
    """
    height, width = clip.shape[-2:]
    if width < height:
        new_height, new_width = math.floor(height / width * size), size
    else:
        new_height, new_width = size, math.floor(width / height * size)
    return F.interpolate(clip, size=(new_height, new_width), mode="bilinear", align_corners=False)


def normalize(clip: torch.Tensor) -> torch.Tensor:
    """``[3, T, H, W]`` in [0, 1] -> ``(x - CLIP_MEAN) / CLIP_STD`` per channel, float32."""
    mean = torch.tensor(anymodal.CLIP_MEAN, dtype=clip.dtype).view(3, 1, 1, 1)
    std = torch.tensor(anymodal.CLIP_STD, dtype=clip.dtype).view(3, 1, 1, 1)
    return (clip - mean) / std


def crop_offsets(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """``(top, left)`` of each crop of ``size`` in a ``height x width`` frame, in output order.

    Crops move along the long axis (the width when the frame is square); the other axis is centred.
    """
    if crops not in CROP_POSITIONS:
        raise ValueError(f"crops must be one of {sorted(CROP_POSITIONS)}, got {crops}")
    portrait = height > width
    long_side, short_side = (height, width) if portrait else (width, height)
    along = {0: 0, 1: math.ceil((long_side - size) / 2), 2: long_side - size}
    across = math.ceil((short_side - size) / 2)
    offsets = []
    for position in CROP_POSITIONS[crops]:
        offsets.append((along[position], across) if portrait else (across, along[position]))
    return offsets


def spatial_crops(clip: torch.Tensor, size: int, crops: int) -> list[torch.Tensor]:
    """``[C, T, H, W]`` -> ``crops`` views ``[C, T, size, size]`` at :func:`crop_offsets`."""
    height, width = clip.shape[-2:]
    return [
        clip[..., top : top + size, left : left + size]
        for top, left in crop_offsets(height, width, size, crops)
    ]


def _read_unique(video: VideoFile, indices: tuple[int, ...]) -> np.ndarray:
    """Decode each distinct index once (a clip of one frame samples it twice): ``[T, H, W, 3]``."""
    distinct = sorted(set(indices))
    frames = video.read_frames(distinct)
    return frames[[distinct.index(i) for i in indices]]


def _check_options(clips: Any, clip_duration: Any, frames_per_clip: Any, size: Any, crops: Any) -> Fraction:
    """Validate the preprocess options; return ``clip_duration`` as an exact Fraction."""
    issues = []
    for name, value in (("clips", clips), ("frames_per_clip", frames_per_clip), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            issues.append(f"modalities.video.preprocess.{name} must be a positive integer, got {value!r}")
    if crops not in CROP_POSITIONS:
        issues.append(f"modalities.video.preprocess.crops must be 1 or 3, got {crops!r}")
    duration = None
    if isinstance(clip_duration, bool) or not isinstance(clip_duration, (int, float)):
        issues.append(f"modalities.video.preprocess.clip_duration must be a number, got {clip_duration!r}")
    elif not math.isfinite(clip_duration) or clip_duration <= 0:
        issues.append(f"modalities.video.preprocess.clip_duration must be positive, got {clip_duration!r}")
    else:
        duration = as_fraction(clip_duration)
    if issues or duration is None:
        raise anymodal.ConfigError(issues)
    return duration
