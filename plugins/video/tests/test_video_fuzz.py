"""Damaged video files are anymodal errors naming the file: never a crash, a hang or a memory jump.

The fuzzing is :func:`anymodal.testing.fuzz.fuzz_modality` (seeded, so CI is deterministic). Most
damaged files are refused from their container's header; one that still decodes costs about 0.1 s
(decord opens it, decodes the sampled frames, the tensor is built), so the counts stay modest:
about 7 s for the three files on 2 cores. The exact messages are in ``test_video_truncation``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from anymodal_video import plugin

from anymodal.testing import registered_modality
from anymodal.testing.fuzz import fuzz_modality

SPEC = registered_modality(plugin, "video")
WriteContainer = Callable[..., Path]


@pytest.mark.parametrize(
    ("name", "codec", "examples"),
    [("valid.mp4", "mpeg4", 120), ("valid.mkv", "mpeg4", 60), ("valid.webm", "libvpx", 60)],
)
def test_damaged_videos_are_errors_naming_the_file(
    write_container: WriteContainer, name: str, codec: str, examples: int
) -> None:
    valid = write_container(name, frames=30, codec=codec)
    fuzz_modality(SPEC, valid, examples=examples)
