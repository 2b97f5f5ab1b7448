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


def _noise(width: int = 64, height: int = 48) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _cut(path: Path, keep: int) -> Path:
    """``path`` with only its first ``keep`` bytes (negative: all but the last ``-keep``)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    return path


@pytest.mark.parametrize(
    ("suffix", "kind"),
    [(".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP"), (".gif", "GIF"), (".tiff", "TIFF")],
)
def test_open_image_says_a_cut_file_is_truncated_with_both_sizes(
    tmp_path: Path, suffix: str, kind: str
) -> None:
    path = tmp_path / f"cut{suffix}"
    _noise().save(path)
    _cut(path, 1000)
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.open_image(path, modality="image")
    assert caught.value.message == (
        f"image file is truncated: its header says 64x48 {kind}, the file ends after 1,000 bytes: {path}"
    )
    assert "cut short" in str(caught.value.hint)


@pytest.mark.parametrize(("suffix", "missing"), [(".png", 12), (".png", 1), (".gif", 1)])
def test_open_image_refuses_a_file_missing_only_its_end(tmp_path: Path, suffix: str, missing: int) -> None:
    # PIL decodes these without complaint: the pixels are all there, the IEND chunk or trailer is not.
    path = tmp_path / f"end{suffix}"
    _noise().save(path)
    size = path.stat().st_size - missing
    _cut(path, -missing)
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.open_image(path, modality="image")
    kind = suffix[1:].upper()
    assert caught.value.message == (
        f"image file is truncated: its header says 64x48 {kind}, the file ends after {size:,} bytes: {path}"
    )


def test_open_image_accepts_a_gif_padded_after_its_trailer(tmp_path: Path) -> None:
    path = tmp_path / "padded.gif"
    _noise().save(path)
    path.write_bytes(path.read_bytes() + b"\0" * 7)
    assert anymodal.open_image(path, modality="image").size == (64, 48)


def test_open_image_refuses_a_jpeg_cut_between_its_segments(tmp_path: Path) -> None:
    # Cut just before the start-of-scan marker, PIL finds no image data ("cannot load this image").
    path = tmp_path / "cut.jpg"
    _noise().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\xff\xda")])
    with pytest.raises(anymodal.InputError, match=r"^image file is truncated: its header says 64x48 JPEG"):
        anymodal.open_image(path, modality="image")


def test_open_image_refuses_a_cut_webp_and_a_file_cut_in_its_header(tmp_path: Path) -> None:
    webp = tmp_path / "cut.webp"
    _noise().save(webp)
    declared = webp.stat().st_size
    _cut(webp, 500)
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.open_image(webp, modality="thermal")
    assert caught.value.message == (
        f"thermal file is truncated: its header says a RIFF image of {declared:,} bytes, "
        f"the file ends after 500 bytes: {webp}"
    )
    png = tmp_path / "head.png"
    _noise().save(png)
    _cut(png, 20)  # inside the IHDR chunk
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.open_image(png, modality="depth")
    assert (
        caught.value.message == f"depth file is truncated: it ends inside its header, after 20 bytes: {png}"
    )


def test_open_image_believes_no_png_chunk_length_before_checking_the_file_size(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "lie.png"
    _noise().save(path)
    data = bytearray(path.read_bytes())
    data[data.index(b"IDAT") - 4] = 0x7F  # the chunk now claims 2 GiB; PIL would read it in one go
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(anymodal.InputError) as caught:
            anymodal.open_image(path, modality="image")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
    assert caught.value.message == (
        f"image file is truncated: its header says 64x48 PNG, the file ends after {len(data):,} bytes: {path}"
    )


def test_open_image_is_strict_even_when_pil_is_told_to_pad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageFile

    path = tmp_path / "cut.png"
    _noise().save(path)
    _cut(path, 1000)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some other library might
    with pytest.raises(anymodal.InputError, match=r"^image file is truncated"):
        anymodal.open_image(path, modality="image")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for whoever set it


def test_nothing_in_anymodal_turns_on_pils_padding_of_truncated_images() -> None:
    code = (
        "import anymodal, anymodal.testing\n"
        "from PIL import ImageFile\n"
        "assert not ImageFile.LOAD_TRUNCATED_IMAGES\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_load_npy_says_a_cut_file_is_truncated_with_both_sizes(tmp_path: Path) -> None:
    path = _npy(tmp_path / "imu.npy", np.ones((2000, 6), np.float32))
    data = path.read_bytes()
    header = len(data) - 48_000
    path.write_bytes(data[: header + 1000])
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.load_npy(path, modality="imu")
    assert caught.value.message == (
        f"imu .npy file is truncated: its header says shape (2000, 6) float32 (48,000 bytes of data), "
        f"it holds 1,000: {path}"
    )
    path.write_bytes(data[:50])
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.load_npy(path, modality="imu")
    assert (
        caught.value.message
        == f"imu .npy file is truncated: it ends inside its header, after 50 bytes: {path}"
    )


def test_load_npy_believes_no_header_before_checking_the_file_size(tmp_path: Path) -> None:
    import tracemalloc

    path = _npy(tmp_path / "lie.npy", np.ones((4, 6), np.float64))
    path.write_bytes(path.read_bytes().replace(b"(4, 6)", b"(9999999999, 6)", 1))
    tracemalloc.start()
    try:
        with pytest.raises(anymodal.InputError) as caught:
            anymodal.load_npy(path, modality="imu")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    assert caught.value.message.startswith(
        "imu .npy file is truncated: its header says shape (9999999999, 6) float64 "
        "(479,999,999,952 bytes of data), it holds "
    )


def test_load_npy_refuses_data_beyond_what_its_header_says(tmp_path: Path) -> None:
    path = _npy(tmp_path / "long.npy", np.ones(3, np.int16))
    path.write_bytes(path.read_bytes() + b"\0\0")
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.load_npy(path, modality="toy")
    assert caught.value.message == (
        f"toy .npy file holds more than its header says: its header says shape (3,) int16 "
        f"(6 bytes of data), it holds 8: {path}"
    )


def test_load_npy_says_a_text_file_is_not_a_npy_file(tmp_path: Path) -> None:
    path = tmp_path / "walk.npy"
    path.write_text("ax,ay,az,gx,gy,gz\n1,2,3,4,5,6\n")
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.load_npy(path, modality="imu")
    assert caught.value.message == (
        f"imu file is not a .npy file (it does not start with numpy's magic bytes \\x93NUMPY): {path}"
    )
    assert "pickle" not in str(caught.value)
    archive = tmp_path / "arrays.npy"
    with archive.open("wb") as stream:
        np.savez(stream, a=np.ones(3))
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.load_npy(archive, modality="imu")
    assert caught.value.message == f"imu file is a .npz archive, not a .npy array: {archive}"


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (b"'shape': (4, 6)", b"'shape': (4, 6", "its header is not a Python dict literal"),
        (b"'<f8'", b"'<q9'", "its dtype '<q9' is not a numpy dtype"),
        (b"(4, 6)", b"(4,-6)", "its shape (4, -6) is not a tuple of sizes"),
        (b"False", b"0    ", "its fortran_order 0 is not True or False"),
        (b"'descr'", b"'dtype'", "its header lacks descr, fortran_order or shape"),
    ],
)
def test_load_npy_names_a_damaged_header(tmp_path: Path, old: bytes, new: bytes, why: str) -> None:
    path = _npy(tmp_path / "bad.npy", np.ones((4, 6)))
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))
    with pytest.raises(anymodal.InputError) as caught:
        anymodal.load_npy(path, modality="depth")
    assert caught.value.message == f"depth .npy file has a damaged header ({why}): {path}"


def test_load_npy_keeps_memory_order_and_byte_order(tmp_path: Path) -> None:
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    loaded = anymodal.load_npy(_npy(tmp_path / "f.npy", fortran), modality="toy")
    assert loaded.flags.f_contiguous and np.array_equal(loaded, fortran)
    big = np.arange(5, dtype=">i4")
    loaded = anymodal.load_npy(_npy(tmp_path / "b.npy", big), modality="toy")
    assert loaded.dtype == np.dtype(">i4") and loaded.tolist() == [0, 1, 2, 3, 4]
    empty = anymodal.load_npy(_npy(tmp_path / "e.npy", np.zeros((0, 6), np.float32)), modality="toy")
    assert empty.shape == (0, 6)


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
