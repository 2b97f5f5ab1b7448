"""The public preprocessing helpers match torchvision's conventions and bound what they decode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import anymodal


@pytest.mark.parametrize(
    ("size", "expected"),
    [((300, 200), (336, 224)), ((200, 300), (224, 336)), ((225, 224), (225, 224)), ((99, 100), (224, 226))],
)
def test_resize_short_side_sizes(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert anymodal.resize_short_side(Image.new("RGB", size), 224).size == expected


def test_resize_short_side_is_pil_bicubic() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8))
    resized = anymodal.resize_short_side(image, 12)
    assert np.array_equal(np.asarray(resized), np.asarray(image.resize((16, 12), Image.Resampling.BICUBIC)))
    nearest = anymodal.resize_short_side(image, 12, Image.Resampling.NEAREST)
    assert np.array_equal(np.asarray(nearest), np.asarray(image.resize((16, 12), Image.Resampling.NEAREST)))


def test_center_crop_rounds_and_pads_like_torchvision() -> None:
    ramp = Image.fromarray(np.tile(np.arange(11, dtype=np.uint8), (4, 1)))
    assert np.asarray(anymodal.center_crop(ramp, 4))[0].tolist() == [4, 5, 6, 7]  # round(3.5) == 4
    small = Image.fromarray(np.full((2, 3), 9, dtype=np.uint8))
    padded = np.asarray(anymodal.center_crop(small, 6))
    # Height 2 -> 2 rows above, 2 below; width 3 -> 1 column before, 2 after.
    expected = np.zeros((6, 6), dtype=np.uint8)
    expected[2:4, 1:4] = 9
    assert np.array_equal(padded, expected)


def test_to_tensor_scales_bytes_and_keeps_floats() -> None:
    rgb = anymodal.to_tensor(Image.new("RGB", (3, 2), (255, 0, 51)))
    assert rgb.shape == (3, 2, 3) and rgb.dtype == torch.float32
    assert rgb[:, 1, 2].tolist() == pytest.approx([1.0, 0.0, 0.2])
    floats = anymodal.to_tensor(Image.fromarray(np.full((2, 2), 7.5, dtype=np.float32)))
    assert floats.shape == (1, 2, 2) and floats.flatten().tolist() == [7.5] * 4
    floats.add_(1)  # writable
    with pytest.raises(ValueError, match="I;16"):
        anymodal.to_tensor(Image.fromarray(np.ones((2, 2), dtype=np.uint16)))


def test_normalize_per_channel() -> None:
    tensor = torch.ones(3, 2, 2)
    out = anymodal.normalize(tensor, anymodal.CLIP_MEAN, anymodal.CLIP_STD)
    expected = [(1 - m) / s for m, s in zip(anymodal.CLIP_MEAN, anymodal.CLIP_STD, strict=True)]
    assert out[:, 0, 0].tolist() == pytest.approx(expected)
    assert torch.equal(tensor, torch.ones(3, 2, 2))
    with pytest.raises(ValueError):
        anymodal.normalize(torch.ones(1, 2, 2), anymodal.CLIP_MEAN, anymodal.CLIP_STD)


def test_open_image_refuses_oversized_and_corrupt_files(tmp_path: Path) -> None:
    path = tmp_path / "pic.png"
    Image.new("RGB", (20, 10)).save(path)
    assert anymodal.open_image(path, modality="image").size == (20, 10)
    with pytest.raises(anymodal.InputError, match=r"20x10 .*limit is 0\.000199 megapixels"):
        anymodal.open_image(path, modality="image", max_pixels=199)
    path.write_bytes(b"garbage")
    with pytest.raises(anymodal.InputError, match=r"pic\.png"):
        anymodal.open_image(path, modality="image")


def test_load_npy_bounds_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.arange(12, dtype=np.int32).reshape(3, 4))
    loaded = anymodal.load_npy(path, modality="toy")
    assert loaded.dtype == np.int32 and loaded.shape == (3, 4) and loaded.flags.writeable
    with pytest.raises(anymodal.InputError, match="holds 12 values"):
        anymodal.load_npy(path, modality="toy", max_elements=11)
    np.save(path, np.array([True, False]))
    with pytest.raises(anymodal.InputError, match="integers or floats"):
        anymodal.load_npy(path, modality="toy")


def test_importing_anymodal_imports_no_numpy_pil_or_torch() -> None:
    code = (
        "import sys, anymodal\n"
        "heavy = sorted(m for m in ('torch', 'PIL', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_clip_starts_spread_evenly_and_repeat_for_short_media():
    from fractions import Fraction

    assert anymodal.clip_starts(Fraction(9, 2), 5) == [
        0,
        Fraction(9, 8),
        Fraction(9, 4),
        Fraction(27, 8),
        Fraction(9, 2),
    ]
    assert anymodal.clip_starts(Fraction(0), 3) == [0, 0, 0]  # media no longer than one clip
    assert anymodal.clip_starts(Fraction(8), 1) == [0]
    with pytest.raises(ValueError, match="clips must be at least 1"):
        anymodal.clip_starts(Fraction(1), 0)
