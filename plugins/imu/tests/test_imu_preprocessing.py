"""IMU recordings become ImageBind's [6, 2000] input; bad files are refused naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from anymodal_imu import plugin, preprocessing

import anymodal
from anymodal.testing import prepare_file, registered_modality

SPEC = registered_modality(plugin)


def prepare(path: Path, **options: object) -> torch.Tensor:
    """What the runtime does: check the file, decode it, preprocess it."""
    tensor: torch.Tensor = prepare_file(SPEC, path, **options)
    return tensor


def recording(samples: int) -> np.ndarray:
    """``[6, samples]``: channel c at time t holds 1000 * c + t, so positions can be read back."""
    return (np.arange(6)[:, None] * 1000 + np.arange(samples)[None, :]).astype(np.float32)


def write_csv(path: Path, rows: np.ndarray, header: str | None = None) -> None:
    lines = [header] if header else []
    lines += [",".join(f"{value:g}" for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def test_both_layouts_give_the_same_tensor(tmp_path: Path) -> None:
    data = recording(2000)
    np.save(tmp_path / "first.npy", data)
    np.save(tmp_path / "last.npy", np.ascontiguousarray(data.T))
    first, last = prepare(tmp_path / "first.npy"), prepare(tmp_path / "last.npy")
    assert first.shape == (6, 2000) and first.dtype == torch.float32
    assert torch.equal(first, last)
    assert torch.equal(first, torch.from_numpy(data))


def test_long_recordings_keep_their_centre(tmp_path: Path) -> None:
    np.save(tmp_path / "long.npy", recording(2011))
    tensor = prepare(tmp_path / "long.npy")
    assert tensor.shape == (6, 2000)
    start = (2011 - 2000) // 2  # 5
    assert tensor[2, 0].item() == 2000 + start and tensor[2, -1].item() == 2000 + start + 1999


def test_short_recordings_are_zero_padded_at_the_end(tmp_path: Path) -> None:
    np.save(tmp_path / "short.npy", recording(100).T)
    tensor = prepare(tmp_path / "short.npy")
    assert torch.equal(tensor[:, :100], torch.from_numpy(recording(100)))
    assert torch.count_nonzero(tensor[:, 100:]) == 0


def test_resample_mode_interpolates_linearly(tmp_path: Path) -> None:
    np.save(tmp_path / "ramp.npy", recording(1000))
    tensor = prepare(tmp_path / "ramp.npy", mode="resample", length=2000)
    assert tensor.shape == (6, 2000)
    # Sample j of the output sits at time j * 999 / 1999 of the input, a straight ramp.
    for j in (0, 1, 777, 1999):
        assert tensor[3, j].item() == pytest.approx(3000 + j * 999 / 1999, abs=1e-3)
    down = prepare(tmp_path / "ramp.npy", mode="resample", length=10)
    np.testing.assert_allclose(down[0].numpy(), np.linspace(0, 999, 10), atol=1e-3)


def test_csv_with_header_matches_npy(tmp_path: Path) -> None:
    data = recording(300)
    np.save(tmp_path / "imu.npy", data)
    write_csv(tmp_path / "imu.csv", data.T, header="ax,ay,az,gx,gy,gz")
    write_csv(tmp_path / "wide.csv", data)  # (6, T), no header
    expected = prepare(tmp_path / "imu.npy", length=256)
    assert torch.equal(prepare(tmp_path / "imu.csv", length=256), expected)
    assert torch.equal(prepare(tmp_path / "wide.csv", length=256), expected)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.ones((5, 100), dtype=np.float32), r"\(6, T\) or \(T, 6\)"),
        (np.ones((6, 100, 1), dtype=np.float32), r"\(6, T\) or \(T, 6\)"),
        (np.ones((6, 6), dtype=np.float32), "at least 8"),
        (np.ones((7, 6), dtype=np.float32), "at least 8"),
        (np.full((6, 100), np.nan, dtype=np.float32), "NaN"),
        (np.array(["a"] * 600).reshape(6, 100), "integers or floats"),
    ],
)
def test_bad_arrays_are_refused_naming_the_file(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(anymodal.InputError, match=message) as error:
        prepare(path)
    assert str(path) in error.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ax,ay,az,gx,gy,gz\n1,2,3,4,5,6\n1,2,x,4,5,6\n", "line 3, column 3 is not a number"),
        ("1,2,3,4,5,6\n1,2,3,4,5\n", "line 2 has 5 values"),
        ("1,2,3,4,5,6\n" * 9 + "1,2,nan,4,5,6\n", "NaN"),
        ("ax,ay,az,gx,gy,gz\n", "no numbers"),
        ("hello world, this is prose\n" * 3, "line 2"),
    ],
)
def test_bad_csv_is_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(anymodal.InputError, match=message) as error:
        prepare(path)
    assert str(path) in error.value.message


def test_binary_csv_and_corrupt_npy_are_refused(tmp_path: Path) -> None:
    binary, corrupt = tmp_path / "binary.csv", tmp_path / "corrupt.npy"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    corrupt.write_bytes(b"not numpy")
    with pytest.raises(anymodal.InputError, match=r"binary\.csv"):
        prepare(binary)
    with pytest.raises(anymodal.InputError, match=r"corrupt\.npy"):
        prepare(corrupt)


def test_size_caps_apply_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np.save(tmp_path / "big.npy", recording(20))
    write_csv(tmp_path / "big.csv", recording(20).T)
    monkeypatch.setattr(preprocessing, "MAX_ELEMENTS", 119)
    with pytest.raises(anymodal.InputError, match=r"too large.*limit is 119"):
        prepare(tmp_path / "big.npy")
    with pytest.raises(anymodal.InputError, match="more than 119 values"):
        prepare(tmp_path / "big.csv")


@pytest.mark.parametrize("options", [{"length": 4}, {"length": 20.0}, {"mode": "stretch"}])
def test_bad_options_are_usage_errors(tmp_path: Path, options: dict[str, object]) -> None:
    np.save(tmp_path / "imu.npy", recording(50))
    with pytest.raises(anymodal.UsageError):
        prepare(tmp_path / "imu.npy", **options)
