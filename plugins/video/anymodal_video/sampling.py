"""Which clips of a video ImageBind looks at, and which frames of each clip.

The reference is pytorchvideo as ImageBind uses it: ``ConstantClipsPerVideoSampler(clip_duration=2,
clips_per_video=5)`` over the decord backend, then ``UniformTemporalSubsample(2)`` per clip.

**Timing rule.** Frame ``i`` (0-based, decode order) is placed at ``i / fps``, with ``fps`` the
container's average frame rate as decord reports it, and the video lasts ``num_frames / fps``. A
clip ``[start, end)`` holds the frames with ``start <= i / fps < end`` and ``i < num_frames``, that
is ``ceil(start * fps) <= i < ceil(end * fps)``. This is pytorchvideo's decord path; it ignores
presentation timestamps, so a variable-frame-rate video is sampled as if its frames were evenly
spaced. Everything here is exact rational arithmetic (``fps`` is the exact value of decord's float);
pytorchvideo multiplies ``fps * start`` in floating point, which can move a window edge by one
frame when ``start * fps`` falls within rounding of an integer.

Videos shorter than ``clip_duration`` work: every clip starts at 0 and covers the whole video, so
the clips repeat (as in the reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import anymodal


@dataclass(frozen=True)
class Clip:
    """One sampled clip: its window ``[start, end)`` in seconds and the frame indices it uses."""

    start: Fraction
    end: Fraction
    frames: tuple[int, ...]


def as_fraction(value: int | float | str | Fraction) -> Fraction:
    """``value`` as an exact Fraction; floats go through their shortest repr, so 0.1 means 1/10."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


def clip_starts(duration: Fraction, clip_duration: Fraction, clips: int) -> list[Fraction]:
    """Start times of ``ConstantClipsPerVideoSampler`` over ``[0, duration - clip_duration]``,
    computed exactly (pytorchvideo's video path keeps Fractions throughout)."""
    return anymodal.clip_starts(max(duration - clip_duration, Fraction(0)), clips)


def frames_in_window(start: Fraction, end: Fraction, fps: Fraction, num_frames: int) -> range:
    """Indices of the frames placed in ``[start, end)``: ``ceil(start*fps) <= i < ceil(end*fps)``.

    A window can only come out empty when frames are more than a clip apart (fps below
    ``1 / clip_duration``); it then holds the frame on screen at ``start``, where the reference
    would fail to decode an empty clip.
    """
    first = math.ceil(start * fps)
    stop = min(math.ceil(end * fps), num_frames)
    if first < stop:
        return range(first, stop)
    on_screen = min(max(math.floor(start * fps), 0), num_frames - 1)
    return range(on_screen, on_screen + 1)


def uniform_temporal_indices(count: int, samples: int) -> list[int]:
    """``UniformTemporalSubsample``: positions ``linspace(0, count - 1, samples)``, clamped to
    ``[0, count - 1]`` and truncated to integers.

    torch's float32 ``linspace`` is used on purpose: for ``samples > 2`` it truncates some exact
    midpoints one lower than exact arithmetic would, and matching the reference matters more here.
    With ``samples == 2`` (ImageBind's setting) the result is the window's first and last frame.
    """
    import torch

    positions = torch.linspace(0, count - 1, samples).clamp(0, count - 1).long()
    return [int(p) for p in positions.tolist()]


def plan_clips(
    num_frames: int,
    fps: float | Fraction,
    *,
    clips: int = 5,
    clip_duration: Fraction = Fraction(2),
    frames_per_clip: int = 2,
) -> list[Clip]:
    """The clips to read from a video of ``num_frames`` frames at ``fps``, with their frames."""
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    rate = Fraction(fps)
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    duration = Fraction(num_frames) / rate
    planned = []
    for start in clip_starts(duration, clip_duration, clips):
        end = start + clip_duration
        window = frames_in_window(start, end, rate, num_frames)
        chosen = tuple(window[p] for p in uniform_temporal_indices(len(window), frames_per_clip))
        planned.append(Clip(start, end, chosen))
    return planned
