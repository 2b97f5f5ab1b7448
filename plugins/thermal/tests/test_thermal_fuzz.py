"""Damaged thermal images are anymodal errors naming the file: never a crash, a hang or a memory
jump.

The fuzzing is :func:`anymodal.testing.fuzz.fuzz_modality` (seeded, so CI is deterministic); the
truncation cases below pin the exact message a user sees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from anymodal_thermal import plugin
from PIL import Image

import anymodal
from anymodal.testing import prepare_file, registered_modality
from anymodal.testing.fuzz import fuzz_modality

SPEC = registered_modality(plugin, "thermal")
#: Examples per file kind: about a second each on 2 cores.
EXAMPLES = 200


def write_png(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)).save(path)
    return path


def write_npy(path: Path) -> Path:
    np.save(path, np.random.default_rng(0).random((48, 64), dtype=np.float32))
    return path


@pytest.mark.parametrize(("write", "suffix"), [(write_png, ".png"), (write_npy, ".npy")], ids=["png", "npy"])
def test_damaged_thermal_images_are_errors_naming_the_file(
    tmp_path: Path, write: Callable[[Path], Path], suffix: str
) -> None:
    valid = write(tmp_path / f"valid{suffix}")
    fuzz_modality(SPEC, valid, examples=EXAMPLES)


def test_a_cut_png_says_it_is_truncated(tmp_path: Path) -> None:
    path = write_png(tmp_path / "cut.png")
    path.write_bytes(path.read_bytes()[:1234])
    with pytest.raises(anymodal.InputError) as caught:
        prepare_file(SPEC, path)
    assert caught.value.message == (
        f"thermal file is truncated: its header says 64x48 PNG, the file ends after 1,234 bytes: {path}"
    )


def test_a_cut_npy_says_it_is_truncated(tmp_path: Path) -> None:
    path = write_npy(tmp_path / "cut.npy")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 12_288 + 100])
    with pytest.raises(anymodal.InputError) as caught:
        prepare_file(SPEC, path)
    assert caught.value.message == (
        f"thermal .npy file is truncated: its header says shape (48, 64) float32 (12,288 bytes of data), "
        f"it holds 100: {path}"
    )
