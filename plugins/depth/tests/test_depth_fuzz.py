"""Damaged depth maps are anymodal errors naming the file: never a crash, a hang or a memory jump.

The fuzzing is :func:`anymodal.testing.fuzz.fuzz_modality` (seeded, so CI is deterministic); the
truncation cases below pin the exact message a user sees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from anymodal_depth import plugin
from PIL import Image

import anymodal
from anymodal.testing import prepare_file, registered_modality
from anymodal.testing.fuzz import fuzz_modality

SPEC = registered_modality(plugin, "depth")
#: Examples per file kind: about a second each on 2 cores.
EXAMPLES = 200


def write_png16(path: Path) -> Path:
    millimetres = np.random.default_rng(0).integers(300, 8000, (48, 64), dtype=np.uint16)
    Image.fromarray(millimetres).save(path)
    return path


def write_npy(path: Path) -> Path:
    np.save(path, np.random.default_rng(0).uniform(0.3, 8.0, (48, 64)).astype(np.float32))
    return path


@pytest.mark.parametrize(
    ("write", "suffix"), [(write_png16, ".png"), (write_npy, ".npy")], ids=["png16", "npy"]
)
def test_damaged_depth_maps_are_errors_naming_the_file(
    tmp_path: Path, write: Callable[[Path], Path], suffix: str
) -> None:
    valid = write(tmp_path / f"valid{suffix}")
    fuzz_modality(SPEC, valid, examples=EXAMPLES)


def test_a_cut_png16_says_it_is_truncated(tmp_path: Path) -> None:
    path = write_png16(tmp_path / "cut.png")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(anymodal.InputError) as caught:
        prepare_file(SPEC, path)
    assert caught.value.message == (
        f"depth file is truncated: its header says 64x48 PNG, the file ends after 2,000 bytes: {path}"
    )


def test_a_cut_npy_says_it_is_truncated(tmp_path: Path) -> None:
    path = write_npy(tmp_path / "cut.npy")
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    with pytest.raises(anymodal.InputError) as caught:
        prepare_file(SPEC, path)
    assert caught.value.message == (
        f"depth .npy file is truncated: its header says shape (48, 64) float32 (12,288 bytes of data), "
        f"it holds 11,288: {path}"
    )
