"""Damaged image files are anymodal errors naming the file: never a crash, a hang or a memory jump.

The fuzzing is :func:`anymodal.testing.fuzz.fuzz_modality` (seeded, so CI is deterministic); the
truncation cases below pin the exact message a user sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from anymodal_image import plugin
from PIL import Image

import anymodal
from anymodal.testing import prepare_file, registered_modality
from anymodal.testing.fuzz import fuzz_modality

SPEC = registered_modality(plugin, "image")
#: Examples per file kind: about a second each on 2 cores.
EXAMPLES = 200


def write_photo(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_damaged_images_are_errors_naming_the_file(tmp_path: Path, suffix: str) -> None:
    valid = write_photo(tmp_path / f"valid{suffix}")
    fuzz_modality(SPEC, valid, examples=EXAMPLES)


@pytest.mark.parametrize(("suffix", "kind"), [(".png", "PNG"), (".jpg", "JPEG"), (".webp", None)])
def test_a_half_image_says_it_is_truncated(tmp_path: Path, suffix: str, kind: str | None) -> None:
    path = write_photo(tmp_path / f"half{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(anymodal.InputError) as caught:
        prepare_file(SPEC, path)
    says = f"64x48 {kind}" if kind else f"a RIFF image of {len(data):,} bytes"
    assert caught.value.message == (
        f"image file is truncated: its header says {says}, "
        f"the file ends after {len(data) // 2:,} bytes: {path}"
    )
