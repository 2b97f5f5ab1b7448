"""The loader: valid clouds decode to float32 ``[N, 3]``, every bad file is one InputError naming it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anymodal
import numpy as np
import pytest
from anymodal.testing import prepare_file, registered_modality

import anymodal_pointcloud.loader
import anymodal_pointcloud.plugin
from anymodal_pointcloud.loader import load
from anymodal_pointcloud.options import MIN_POINTS


def cloud(points: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((points, 3)).astype(np.float32)


def saved(path: Path, array: np.ndarray, **save: bool) -> Path:
    np.save(path, array, **save)
    return path


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int16, np.uint8])
def test_numeric_clouds_decode_to_float32(tmp_path: Path, dtype: type) -> None:
    array: np.ndarray = (np.abs(cloud()) * 10).astype(dtype)
    points = load(saved(tmp_path / "scan.npy", array))
    assert points.dtype == np.float32 and points.shape == (100, 3)
    np.testing.assert_array_equal(points, array.astype(np.float32))


def test_the_fewest_points_allowed_decode(tmp_path: Path) -> None:
    assert load(saved(tmp_path / "scan.npy", cloud(MIN_POINTS))).shape == (MIN_POINTS, 3)


def test_a_fortran_ordered_cloud_decodes(tmp_path: Path) -> None:
    array = np.asfortranarray(cloud())
    np.testing.assert_array_equal(load(saved(tmp_path / "scan.npy", array)), array)


def _header_only(path: Path) -> None:
    """A valid header declaring 2,000,000 points, followed by almost no data."""
    with path.open("wb") as stream:
        header = {"descr": "<f4", "fortran_order": False, "shape": (2_000_000, 3)}
        np.lib.format.write_array_header_1_0(stream, header)
        stream.write(b"\0" * 48)


def _truncated(path: Path) -> None:
    np.save(path, cloud())
    path.write_bytes(path.read_bytes()[:-200])


def _npz(path: Path) -> None:
    np.savez(path.with_suffix(".npz"), cloud())
    path.with_suffix(".npz").rename(path)


def _array(array: np.ndarray, **save: bool) -> Callable[[Path], object]:
    return lambda path: saved(path, array, **save)


def _with_nan() -> np.ndarray:
    array = cloud()
    array[17, 1] = np.nan
    return array


#: name: (writes the file, what its error says)
BAD_FILES: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing": (lambda path: None, "not found"),
    "empty": (lambda path: path.touch(), "empty"),
    "text": (lambda path: path.write_text("x,y,z\n1,2,3\n"), r"not a \.npy file"),
    "garbage header": (
        lambda path: path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00" + b"{" * 16),
        "damaged",
    ),
    "truncated": (_truncated, "truncated"),
    "npz archive": (_npz, r"\.npz archive"),
    "pickled objects": (
        _array(np.array([[1, 2, 3]] * 20, dtype=object), allow_pickle=True),
        "integers or floats",
    ),
    "strings": (_array(np.array([["a", "b", "c"]] * 20)), "integers or floats"),
    "complex": (_array(cloud().astype(np.complex64)), "integers or floats"),
    "booleans": (_array(np.ones((20, 3), dtype=bool)), "integers or floats"),
    "structured": (
        _array(np.zeros(20, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])),
        "structured",
    ),
    "1-D": (_array(cloud().ravel()), r"shape \[N, 3\]"),
    "2 columns": (_array(cloud()[:, :2]), r"shape \[N, 3\].*\[100, 2\]"),
    "4 columns": (_array(np.ones((100, 4), np.float32)), r"shape \[N, 3\].*\[100, 4\]"),
    "3-D": (_array(np.ones((10, 10, 3), np.float32)), r"shape \[N, 3\]"),
    "transposed": (_array(cloud().T), "transposed"),
    "too few points": (
        _array(cloud(MIN_POINTS - 1)),
        f"{MIN_POINTS - 1} points, at least {MIN_POINTS}",
    ),
    "no points": (_array(np.zeros((0, 3), np.float32)), f"0 points, at least {MIN_POINTS}"),
    "too many points": (_header_only, "2,000,000 points, the limit is 1,000,000"),
    "NaN": (_array(_with_nan()), "NaN or infinite"),
    "infinity": (_array(np.full((100, 3), np.inf)), "NaN or infinite"),
    "beyond float32": (_array(cloud().astype(np.float64) * 1e300), "float32's range"),
    "all one point": (_array(np.ones((100, 3), np.float32)), "all coincide"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_one_input_error_naming_the_file(tmp_path: Path, case: str) -> None:
    write, message = BAD_FILES[case]
    path = tmp_path / "scan.npy"
    write(path)
    with pytest.raises(anymodal.InputError, match=message) as caught:
        load(path)
    assert str(path) in caught.value.message, caught.value.message
    assert caught.value.hint, "every error says what to do"
    assert "\n" not in str(caught.value)


def test_the_point_limit_applies_to_files_of_any_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anymodal_pointcloud.loader, "MAX_POINTS", 100)
    assert load(saved(tmp_path / "ok.npy", cloud(100))).shape == (100, 3)
    with pytest.raises(anymodal.InputError, match="101 points, the limit is 100"):
        load(saved(tmp_path / "big.npy", cloud(101)))


def test_the_runtime_reports_the_same_errors(tmp_path: Path) -> None:
    spec = registered_modality(anymodal_pointcloud.plugin, "pointcloud")
    path = saved(tmp_path / "few.npy", cloud(3))
    with pytest.raises(anymodal.InputError, match=f"3 points, at least {MIN_POINTS}.*few.npy"):
        prepare_file(spec, path)
    with pytest.raises(anymodal.InputError, match=r"does not accept \.txt"):
        prepare_file(spec, saved(tmp_path / "scan.npy", cloud()).rename(tmp_path / "scan.txt"))
