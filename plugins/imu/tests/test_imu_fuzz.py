"""Damaged IMU recordings are anymodal errors naming the file: never a crash, a hang or a memory
jump.

The fuzzing is :func:`anymodal.testing.fuzz.fuzz_modality` (seeded, so CI is deterministic); the
truncated, ragged and garbled cases below pin the exact message a user sees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from anymodal_imu import plugin

import anymodal
from anymodal.testing import prepare_file, registered_modality
from anymodal.testing.fuzz import fuzz_modality

SPEC = registered_modality(plugin, "imu")
#: Examples per file kind: about a second each on 2 cores.
EXAMPLES = 200
ROWS = "ax,ay,az,gx,gy,gz\n" + "".join(f"{t},{t + 1},{t + 2},0.5,-0.5,9.81\n" for t in range(40))


def write_npy(path: Path) -> Path:
    np.save(path, np.random.default_rng(0).normal(size=(2000, 6)).astype(np.float32))
    return path


def write_csv(path: Path) -> Path:
    path.write_text(ROWS)
    return path


@pytest.mark.parametrize(("write", "suffix"), [(write_npy, ".npy"), (write_csv, ".csv")], ids=["npy", "csv"])
def test_damaged_recordings_are_errors_naming_the_file(
    tmp_path: Path, write: Callable[[Path], Path], suffix: str
) -> None:
    valid = write(tmp_path / f"valid{suffix}")
    fuzz_modality(SPEC, valid, examples=EXAMPLES)


def refusal(path: Path) -> str:
    with pytest.raises(anymodal.InputError) as caught:
        prepare_file(SPEC, path)
    return caught.value.message


def test_a_cut_npy_says_it_is_truncated(tmp_path: Path) -> None:
    path = write_npy(tmp_path / "walk.npy")
    path.write_bytes(path.read_bytes()[: 128 + 1000])  # numpy's 128-byte header, then 1,000 bytes
    assert refusal(path) == (
        f"imu .npy file is truncated: its header says shape (2000, 6) float32 (48,000 bytes of data), "
        f"it holds 1,000: {path}"
    )


def test_a_csv_named_npy_says_it_is_not_a_npy_file(tmp_path: Path) -> None:
    path = tmp_path / "walk.npy"
    path.write_text(ROWS)
    assert refusal(path) == (
        f"imu file is not a .npy file (it does not start with numpy's magic bytes \\x93NUMPY): {path}"
    )


def test_a_csv_cut_inside_its_last_row_says_it_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "walk.csv"
    path.write_text(ROWS[: ROWS.index("39,40,41,") + len("39,40,41")])  # inside the row of t = 39
    assert refusal(path) == (
        f"imu CSV is truncated: its last line (41) holds 3 of 6 values and no line end: {path}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "1,2,3,4,5,6\n1,2,3,4,5\n1,2,3,4,5,6\n",
            "imu CSV line 2 has 5 values, earlier lines have 6 ('1,2,3,4,5' in a comma-separated table)",
        ),
        (
            "1,2,3,4,5,6\n1,2,3,4,5,6,7\n",
            "imu CSV line 2 has 7 values, earlier lines have 6 ('1,2,3,4,5,6,7' in a comma-separated table)",
        ),
        (
            "1,2,3,4,5,6\n1,2,3,4,5\n",
            "imu CSV is truncated: its last line (2) holds 5 of 6 values and no line end",
        ),
        (
            "a,b,c,d,e,f\n1,2,3,4,5,6\n1,2,3,4;5,6\n",
            "imu CSV line 3 has 5 values, earlier lines have 6 ('1,2,3,4;5,6' in a comma-separated table)",
        ),
        (
            "1,2,3,4,5,6\n1,2,\x00\x01,4,5,6\n",
            "imu CSV line 2, column 3 is not a number ('\\x00\\x01' in a comma-separated table)",
        ),
        ("1,2,3,4,5,6\n" * 9 + "1,2,3,4,5,inf\n", "imu array contains NaN or infinite values"),
    ],
)
def test_ragged_and_garbled_csv_rows_name_the_line_and_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "walk.csv"
    path.write_text(text[:-1] if "truncated" in message else text)
    assert refusal(path) == f"{message}: {path}"
