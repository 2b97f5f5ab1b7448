"""Depth maps become ImageBind disparity (Omnivore's recipe); bad files are refused naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from anymodal_depth import plugin, preprocessing
from PIL import Image

import anymodal
from anymodal.testing import prepare_file, registered_modality

BASELINE, FOCAL = 0.075, 518.857


SPEC = registered_modality(plugin)


def prepare(path: Path, **options: object) -> torch.Tensor:
    """What the runtime does: check the file, decode it, preprocess it."""
    tensor: torch.Tensor = prepare_file(SPEC, path, **options)
    return tensor


def millimetre_map() -> np.ndarray:
    depth = np.full((224, 224), 2000, dtype=np.uint16)
    depth[0, 0] = 1000  # 1 m
    depth[10, 20] = 0  # no measurement -> 50 m
    depth[30, 40] = 5  # 5 mm -> clipped to 0.01 m
    depth[50, 60] = 65000  # 65 m -> clipped to 50 m
    depth[223, 223] = 3500
    return depth


def test_sixteen_bit_png_gives_the_disparity_formula(tmp_path: Path) -> None:
    path = tmp_path / "depth.png"
    Image.fromarray(millimetre_map()).save(path)
    assert Image.open(path).mode == "I;16"
    tensor = prepare(path)
    assert tensor.shape == (1, 224, 224) and tensor.dtype == torch.float32
    bf = BASELINE * FOCAL
    for (row, col), metres in {
        (0, 0): 1.0,
        (10, 20): 50.0,
        (30, 40): 0.01,
        (50, 60): 50.0,
        (223, 223): 3.5,
        (100, 100): 2.0,
    }.items():
        assert tensor[0, row, col].item() == pytest.approx(bf / metres, rel=1e-6)


def test_npy_in_metres_equals_png_in_millimetres(tmp_path: Path) -> None:
    png, npy = tmp_path / "depth.png", tmp_path / "depth.npy"
    millimetres = millimetre_map()
    Image.fromarray(millimetres).save(png)
    np.save(npy, millimetres.astype(np.float32) / 1000)
    torch.testing.assert_close(prepare(npy), prepare(png))


def test_channel_axis_of_one_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "depth.npy"
    np.save(path, np.full((1, 16, 16), 2.0, dtype=np.float64))
    tensor = prepare(path, image_size=16)
    torch.testing.assert_close(tensor, torch.full((1, 16, 16), BASELINE * FOCAL / 2.0))


def test_baseline_and_focal_length_options_scale_disparity(tmp_path: Path) -> None:
    path = tmp_path / "depth.npy"
    np.save(path, np.full((16, 16), 4.0, dtype=np.float32))
    tensor = prepare(path, image_size=16, baseline=0.095, focal_length=600.0)
    torch.testing.assert_close(tensor, torch.full((1, 16, 16), 0.095 * 600.0 / 4.0))


def test_resize_and_crop_match_an_independent_computation(tmp_path: Path) -> None:
    path = tmp_path / "depth.npy"
    metres = np.random.default_rng(0).uniform(0.5, 8.0, (120, 200)).astype(np.float32)
    np.save(path, metres)
    tensor = prepare(path, image_size=64)
    disparity = (BASELINE * FOCAL / metres).astype(np.float32)
    resized = np.asarray(Image.fromarray(disparity).resize((106, 64), Image.Resampling.BICUBIC))
    left = round((106 - 64) / 2)
    np.testing.assert_allclose(tensor[0].numpy(), resized[:, left : left + 64], rtol=1e-5)


def test_eight_bit_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "depth.png"
    Image.fromarray(np.full((8, 8), 50, dtype=np.uint8)).save(path)
    with pytest.raises(anymodal.InputError, match="16-bit") as error:
        prepare(path)
    assert str(path) in error.value.message


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((8, 8), np.nan, dtype=np.float32), "NaN"),
        (np.full((8, 8), 1000, dtype=np.uint16), "float metres"),
        (np.ones((2, 8, 8), dtype=np.float32), "2-D"),
        (np.ones((8,), dtype=np.float32), "2-D"),
        (np.ones((8, 8), dtype=np.complex64), "integers or floats"),
    ],
)
def test_bad_arrays_are_refused_naming_the_file(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(anymodal.InputError, match=message) as error:
        prepare(path)
    assert str(path) in error.value.message


def test_pickled_and_corrupt_files_are_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(anymodal.InputError, match=r"objects\.npy"):
        prepare(pickled)
    for name in ("junk.npy", "junk.png"):
        corrupt = tmp_path / name
        corrupt.write_bytes(b"\x93NUMPY garbage that is not a header")
        with pytest.raises(anymodal.InputError, match=name.replace(".", r"\.")):
            prepare(corrupt)


def test_size_caps_apply_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preprocessing, "MAX_ELEMENTS", 63)
    monkeypatch.setattr(preprocessing, "MAX_PIXELS", 63)
    npy, png = tmp_path / "big.npy", tmp_path / "big.png"
    np.save(npy, np.ones((8, 8), dtype=np.float32))
    Image.fromarray(np.ones((8, 8), dtype=np.uint16)).save(png)
    with pytest.raises(anymodal.InputError, match="too large"):
        prepare(npy)
    with pytest.raises(anymodal.InputError, match="megapixels"):
        prepare(png)


@pytest.mark.parametrize(
    "options", [{"image_size": 0}, {"baseline": -1.0}, {"focal_length": "518"}, {"image_size": 2.0}]
)
def test_bad_options_are_usage_errors(tmp_path: Path, options: dict[str, object]) -> None:
    path = tmp_path / "depth.npy"
    np.save(path, np.ones((8, 8), dtype=np.float32))
    with pytest.raises(anymodal.UsageError):
        prepare(path, **options)
