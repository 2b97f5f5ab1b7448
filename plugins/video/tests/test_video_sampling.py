"""Clip starts and frame choice, checked against integer arithmetic done independently here."""

from __future__ import annotations

from fractions import Fraction

import pytest
from anymodal_video.sampling import (
    as_fraction,
    clip_starts,
    frames_in_window,
    plan_clips,
    uniform_temporal_indices,
)

TWO = Fraction(2)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (Fraction(1), [Fraction(0)] * 5),
        (Fraction(2), [Fraction(0)] * 5),
        (Fraction(13, 2), [Fraction(0), Fraction(9, 8), Fraction(9, 4), Fraction(27, 8), Fraction(9, 2)]),
    ],
)
def test_clip_starts_are_exact_fractions(duration: Fraction, expected: list[Fraction]) -> None:
    starts = clip_starts(duration, TWO, 5)
    assert starts == expected
    assert all(type(start) is Fraction for start in starts)


def test_one_clip_starts_at_zero_and_more_clips_spread_to_the_end() -> None:
    assert clip_starts(Fraction(10), TWO, 1) == [0]
    assert clip_starts(Fraction(10), TWO, 3) == [0, 4, 8]


def _expected_frames(num_frames: int, fps: int, clips: int = 5) -> list[tuple[int, int]]:
    """Independent integer version for an integer fps and 2-second clips: the window of clip k
    starts at frame ceil(k * (num_frames - 2 fps)^+ / (clips - 1)) and holds 2 fps frames, cut at the
    end of the video; the two sampled frames are its first and last."""
    spare = max(num_frames - 2 * fps, 0)  # max_start, counted in frames
    result = []
    for k in range(clips):
        first = -(-k * spare // (clips - 1))
        last = min(first + 2 * fps, num_frames) - 1
        result.append((first, last))
    return result


@pytest.mark.parametrize(("num_frames", "fps"), [(10, 10), (20, 10), (65, 10), (25, 25), (163, 25), (30, 12)])
def test_plan_picks_first_and_last_frame_of_each_window(num_frames: int, fps: int) -> None:
    plan = plan_clips(num_frames, float(fps))
    assert [clip.frames for clip in plan] == _expected_frames(num_frames, fps)
    assert all(clip.end - clip.start == 2 for clip in plan)


def test_plan_for_a_6_5_second_video_at_10_fps() -> None:
    plan = plan_clips(65, 10.0)
    assert [clip.start for clip in plan] == [
        0,
        Fraction(9, 8),
        Fraction(9, 4),
        Fraction(27, 8),
        Fraction(9, 2),
    ]
    assert [clip.frames for clip in plan] == [(0, 19), (12, 31), (23, 42), (34, 53), (45, 64)]


def test_window_is_half_open_on_frame_start_times() -> None:
    # At 10 fps frame 20 starts exactly at 2.0 s: inside [2, 4), outside [0, 2).
    assert frames_in_window(Fraction(0), TWO, Fraction(10), 100) == range(0, 20)
    assert frames_in_window(TWO, Fraction(4), Fraction(10), 100) == range(20, 40)
    assert frames_in_window(Fraction(9, 8), Fraction(25, 8), Fraction(10), 100) == range(12, 32)
    assert frames_in_window(Fraction(0), TWO, Fraction(10), 7) == range(0, 7)


def test_sparse_frames_fall_back_to_the_frame_on_screen() -> None:
    # One frame every 4 s: frames start at 0, 4, 8 s; the video lasts 12 s.
    plan = plan_clips(3, 0.25)
    assert [clip.start for clip in plan] == [0, Fraction(5, 2), 5, Fraction(15, 2), 10]
    assert [clip.frames for clip in plan] == [(0, 0), (1, 1), (1, 1), (2, 2), (2, 2)]


def test_uniform_temporal_indices_match_the_reference_linspace() -> None:
    assert uniform_temporal_indices(20, 2) == [0, 19]
    assert uniform_temporal_indices(1, 2) == [0, 0]
    assert uniform_temporal_indices(9, 3) == [0, 4, 8]
    # Position 7 is exactly 7 * 4 / 14 = 2, but float32 linspace gives 1.9999999 and truncates it
    # to 1; the reference (torch's UniformTemporalSubsample) does the same, so we do too.
    assert uniform_temporal_indices(5, 15) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4]


def test_as_fraction_reads_floats_as_written() -> None:
    assert as_fraction(2.0) == 2
    assert as_fraction(0.1) == Fraction(1, 10)
    assert as_fraction(Fraction(3, 2)) == Fraction(3, 2)
