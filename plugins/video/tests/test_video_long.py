"""A one-hour video goes through the loader and preprocessor in bounded memory, reading only the
frames ImageBind samples (frame 0 for the size check, then 5 clips x 2 frames)."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from anymodal_video import decode, plugin

from anymodal.testing import prepare_file, registered_modality

SPEC = registered_modality(plugin, "video")
WriteContainer = Callable[..., Path]
#: Most the peak resident memory may rise while an hour of video is loaded and preprocessed.
PEAK_GROWTH_MIB = 256


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@pytest.mark.slow
def test_an_hour_of_video_stays_in_bounded_memory_and_reads_only_the_sampled_frames(
    write_container: WriteContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hour = write_container("hour.mp4", frames=60 * 60 * 2, fps=2)  # 64x48 at 2 fps: seconds to write
    minute = write_container("minute.mp4", frames=60 * 2, fps=2)
    prepare_file(SPEC, minute)  # imports and first-use allocations happen here, not below
    read: list[int] = []
    original = decode.VideoFile.read_frames

    def counting(self: decode.VideoFile, indices: Sequence[int]) -> np.ndarray:
        read.extend(indices)
        return original(self, indices)

    monkeypatch.setattr(decode.VideoFile, "read_frames", counting)
    before = peak_rss_mib()
    tensor = prepare_file(SPEC, hour)
    grown = peak_rss_mib() - before
    assert tuple(tensor.shape) == (15, 3, 2, 224, 224)
    assert grown < PEAK_GROWTH_MIB, f"peak memory rose by {grown:.0f} MiB for an hour of video"
    # Frame 0 (the size check), then the first and last frame of each 2 s clip over 3,598 s.
    assert read == [0, 0, 3, 1799, 1802, 3598, 3601, 5397, 5400, 7196, 7199]
