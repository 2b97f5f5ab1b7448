"""Thermal images become PandaGPT's thermal input (one channel in [0, 1], not normalised)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from anymodal_thermal import plugin, preprocessing
from PIL import Image

import anymodal
from anymodal.testing import prepare_file, registered_modality

SPEC = registered_modality(plugin)


def prepare(path: Path, **options: object) -> torch.Tensor:
    """What the runtime does: check the file, decode it, preprocess it."""
    tensor: torch.Tensor = prepare_file(SPEC, path, **options)
    return tensor


def test_sixteen_bit_png_is_divided_by_65535(tmp_path: Path) -> None:
    counts = np.random.default_rng(0).integers(0, 65536, (224, 224)).astype(np.uint16)
    counts[0, 0], counts[1, 1] = 0, 65535
    path = tmp_path / "thermal.png"
    Image.fromarray(counts).save(path)
    tensor = prepare(path)
    assert tensor.shape == (1, 224, 224) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor[0].numpy(), counts / 65535.0, rtol=1e-6)
    assert (tensor[0, 0, 0].item(), tensor[0, 1, 1].item()) == (0.0, 1.0)


def test_eight_bit_png_follows_pandagpt(tmp_path: Path) -> None:
    grey = np.random.default_rng(1).integers(0, 256, (250, 300)).astype(np.uint8)
    path = tmp_path / "thermal.png"
    Image.fromarray(grey).save(path)
    tensor = prepare(path)
    # Resize(224, bicubic) on the 8-bit image, CenterCrop(224), ToTensor: no normalisation.
    resized = np.asarray(Image.fromarray(grey).resize((268, 224), Image.Resampling.BICUBIC))
    left = round((268 - 224) / 2)
    np.testing.assert_allclose(tensor[0].numpy(), resized[:, left : left + 224] / 255.0, atol=1e-6)


def test_black_stays_zero_because_nothing_is_normalised(tmp_path: Path) -> None:
    path = tmp_path / "black.png"
    Image.new("L", (40, 40), 0).save(path)
    assert torch.equal(prepare(path, image_size=32), torch.zeros(1, 32, 32))


def test_colour_jpeg_becomes_one_luminance_channel(tmp_path: Path) -> None:
    path = tmp_path / "thermal.jpg"
    Image.new("RGB", (64, 48), (200, 200, 200)).save(path, quality=95)
    tensor = prepare(path, image_size=32)
    assert tensor.shape == (1, 32, 32)
    assert tensor.mean().item() == pytest.approx(200 / 255, abs=2 / 255)


@pytest.mark.parametrize(
    ("array", "scale"),
    [
        (np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), 1.0),
        (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4, 255.0),
        (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000, 65535.0),
    ],
)
def test_npy_arrays_are_scaled_to_unit_range(tmp_path: Path, array: np.ndarray, scale: float) -> None:
    path = tmp_path / "thermal.npy"
    np.save(path, array)
    tensor = prepare(path, image_size=8)
    np.testing.assert_allclose(tensor[0].numpy(), array.astype(np.float64) / scale, rtol=1e-6)


def test_float_resize_is_clipped_to_unit_range(tmp_path: Path) -> None:
    path = tmp_path / "edges.npy"
    step = np.zeros((40, 40), dtype=np.float32)
    step[:, 20:] = 1.0
    np.save(path, step)
    raw = np.asarray(Image.fromarray(step).resize((16, 16), Image.Resampling.BICUBIC))
    assert raw.min() < 0.0 and raw.max() > 1.0  # bicubic rings at the step
    tensor = prepare(path, image_size=16)
    assert tensor.min().item() == 0.0 and tensor.max().item() == 1.0


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((8, 8), 1.5, dtype=np.float32), r"\[0, 1\]"),
        (np.full((8, 8), 100, dtype=np.int16), "unsigned"),
        (np.full((8, 8), np.inf, dtype=np.float32), "NaN or infinite"),
        (np.ones((3, 8, 8), dtype=np.float32), "2-D"),
    ],
)
def test_bad_arrays_are_refused_naming_the_file(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(anymodal.InputError, match=message) as error:
        prepare(path)
    assert str(path) in error.value.message


def test_float_tiff_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    tiff = tmp_path / "float.tiff"
    Image.fromarray(np.ones((8, 8), dtype=np.float32)).save(tiff)
    with pytest.raises(anymodal.InputError, match=r"float\.tiff"):
        prepare(tiff)
    corrupt = tmp_path / "junk.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing valid")
    with pytest.raises(anymodal.InputError, match=r"junk\.png"):
        prepare(corrupt)


def test_size_caps_apply_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preprocessing, "MAX_ELEMENTS", 63)
    monkeypatch.setattr(preprocessing, "MAX_PIXELS", 63)
    npy, png = tmp_path / "big.npy", tmp_path / "big.png"
    np.save(npy, np.ones((8, 8), dtype=np.float32))
    Image.new("L", (8, 8)).save(png)
    with pytest.raises(anymodal.InputError, match="too large"):
        prepare(npy)
    with pytest.raises(anymodal.InputError, match="megapixels"):
        prepare(png)


def test_bad_image_size_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "thermal.png"
    Image.new("L", (8, 8)).save(path)
    with pytest.raises(anymodal.UsageError, match="image_size"):
        prepare(path, image_size=-1)
