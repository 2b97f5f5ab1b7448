"""Images become exactly ImageBind's vision input; bad files are refused naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from anymodal_image import plugin, preprocessing
from PIL import Image

import anymodal
from anymodal.testing import prepare_file, registered_modality

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


SPEC = registered_modality(plugin)


def prepare(path: Path, **options: object) -> torch.Tensor:
    """What the runtime does: check the file, decode it, preprocess it."""
    tensor: torch.Tensor = prepare_file(SPEC, path, **options)
    return tensor


def random_rgb(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def expected(image: Image.Image, size: int = 224) -> np.ndarray:
    """Resize(size, bicubic) + CenterCrop(size) + ToTensor + Normalize, written out with PIL and numpy."""
    width, height = image.size
    scale = size / min(width, height)
    new = (size, int(height * scale)) if width <= height else (int(width * scale), size)
    pixels = np.asarray(image.resize(new, Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    top, left = round((new[1] - size) / 2), round((new[0] - size) / 2)
    crop = pixels[top : top + size, left : left + size]
    return ((crop - MEAN) / STD).transpose(2, 0, 1)


def test_png_matches_an_independent_computation(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    image = random_rgb(300, 200)
    image.save(path)
    tensor = prepare(path)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), expected(image), atol=1e-5)


def test_portrait_jpeg_and_image_size_option(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    random_rgb(90, 160, seed=1).save(path, quality=95)
    decoded = Image.open(path).convert("RGB")
    tensor = prepare(path, image_size=64)
    assert tensor.shape == (3, 64, 64)
    np.testing.assert_allclose(tensor.numpy(), expected(decoded, 64), atol=1e-5)


@pytest.mark.parametrize(("width", "left"), [(8, 0), (9, 0), (10, 1), (11, 2), (13, 2)])
def test_centre_crop_rounds_like_torchvision(tmp_path: Path, width: int, left: int) -> None:
    # Column c holds value 10 * c in the red channel; the short side already equals image_size.
    red = np.tile(np.arange(width, dtype=np.uint8) * 10, (8, 1))
    pixels = np.stack([red, np.zeros_like(red), np.zeros_like(red)], axis=-1)
    path = tmp_path / "ramp.png"
    Image.fromarray(pixels).save(path)
    tensor = prepare(path, image_size=8)
    first_column = tensor[0, 0, 0].item() * STD[0] + MEAN[0]
    assert first_column == pytest.approx(10 * left / 255, abs=1e-6)


def test_greyscale_and_alpha_become_rgb(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((32, 32), 128, dtype=np.uint8)).save(grey)
    tensor = prepare(grey, image_size=32)
    np.testing.assert_allclose(
        tensor.numpy(), ((128 / 255 - MEAN) / STD)[:, None, None] * np.ones((3, 32, 32)), atol=1e-5
    )
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(rgba)
    assert plugin.load(rgba).mode == "RGB"


def test_gif_uses_its_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    red, blue = Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))
    red.save(path, save_all=True, append_images=[blue], duration=100)
    tensor = prepare(path, image_size=16)
    np.testing.assert_allclose(tensor[:, 5, 5].numpy(), (np.array([1.0, 0.0, 0.0]) - MEAN) / STD, atol=1e-5)


def test_webp_and_bmp_decode(tmp_path: Path) -> None:
    for suffix in ("webp", "bmp"):
        path = tmp_path / f"photo.{suffix}"
        random_rgb(40, 30).save(path)
        assert prepare(path, image_size=24).shape == (3, 24, 24)


def test_corrupt_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"this is not an image at all")
    with pytest.raises(anymodal.InputError) as error:
        prepare(path)
    assert str(path) in error.value.message


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    random_rgb(64, 64).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(anymodal.InputError, match=r"cut\.png"):
        prepare(path)


def test_sixteen_bit_image_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "depth.png"
    Image.fromarray(np.full((8, 8), 4000, dtype=np.uint16)).save(path)
    with pytest.raises(anymodal.InputError) as error:
        prepare(path)
    assert str(path) in error.value.message and "--depth" in (error.value.hint or "")


def test_image_above_the_pixel_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preprocessing, "MAX_PIXELS", 100)
    path = tmp_path / "big.png"
    random_rgb(11, 10).save(path)
    with pytest.raises(anymodal.InputError, match=r"big\.png is 11x10 .*megapixels"):
        prepare(path)


@pytest.mark.parametrize("size", [0, -3, 2.5, "224", True])
def test_bad_image_size_option_is_a_usage_error(tmp_path: Path, size: object) -> None:
    path = tmp_path / "photo.png"
    random_rgb(10, 10).save(path)
    with pytest.raises(anymodal.UsageError, match="image_size"):
        prepare(path, image_size=size)
