"""anymodal.read_array: one sensor recording from .npy, .npz, .csv/.tsv or .parquet, as float32
[channels, samples]; every bad file is an InputError naming the modality, the file and the fault."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import anymodal
from anymodal.preprocess import arrays as module
from anymodal.testing.fuzz import fuzz_modality

#: [3 channels, 4 samples]: channel c at sample t holds 10 * c + t.
RECORDING = np.array([[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23]], dtype=np.float32)
#: RECORDING as a table: one sample per line, one channel per column, with a header.
TABLE = "ax,ay,az\n" + "".join(f"{t},{10 + t},{20 + t}\n" for t in range(4))


def read(path: Path, **options: Any) -> np.ndarray:
    return anymodal.read_array(path, modality="imu", **options)


def refusal(path: Path, **options: Any) -> str:
    with pytest.raises(anymodal.InputError) as caught:
        read(path, **options)
    assert caught.value.hint
    return caught.value.message


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_it_is_the_public_api() -> None:
    assert "read_array" in anymodal.__all__
    assert anymodal.read_array is module.read_array


# --- what is read ---------------------------------------------------------------------------------


def test_npy_is_read_as_stored_as_contiguous_float32(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.asfortranarray(RECORDING.astype(np.int16)))
    got = read(tmp_path / "f.npy")
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, RECORDING)


def test_a_1d_array_is_one_channel(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.arange(5.0))
    np.testing.assert_array_equal(read(tmp_path / "one.npy"), [[0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(read(tmp_path / "one.npy", channels=1), [[0, 1, 2, 3, 4]])


def test_npz_reads_its_only_array_or_the_named_one(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", acc=RECORDING)
    np.savez_compressed(tmp_path / "two.npz", acc=RECORDING, gyro=-RECORDING)
    np.testing.assert_array_equal(read(tmp_path / "one.npz"), RECORDING)
    np.testing.assert_array_equal(read(tmp_path / "two.npz", key="gyro"), -RECORDING)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".CSV"])
@pytest.mark.parametrize(
    "delimiter", [",", ";", "\t", " ", "  "], ids=["comma", "semicolon", "tab", "space", "spaces"]
)
@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_text_tables_have_a_channel_per_column(
    tmp_path: Path, suffix: str, delimiter: str, header: bool
) -> None:
    text = TABLE.replace(",", delimiter)
    path = write(tmp_path / f"walk{suffix}", text if header else text.split("\n", 1)[1])
    got = read(path)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, RECORDING)


def test_text_tables_may_have_blank_lines_a_bom_and_crlf_or_cr_line_ends(tmp_path: Path) -> None:
    lines = TABLE.split("\n")
    text = "\n \n" + "\n".join([*lines[:3], "", *lines[3:]])
    for end in ("\n", "\r\n", "\r"):
        path = tmp_path / "walk.csv"
        path.write_bytes(("\ufeff" + text.replace("\n", end)).encode())
        np.testing.assert_array_equal(read(path), RECORDING)


def test_a_one_column_table_is_one_channel(tmp_path: Path) -> None:
    np.testing.assert_array_equal(read(write(tmp_path / "t.csv", "t\n1.5\n-2e3\n")), [[1.5, -2000.0]])


def pyarrow_modules() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet: the ``parquet`` extra. Skipped without it, unless
    ANYMODAL_REQUIRE_PARQUET=1 (as .ci/run sets), which makes it a failure."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        if os.environ.get("ANYMODAL_REQUIRE_PARQUET") == "1":
            pytest.fail(f"pyarrow is not installed ({error}), and ANYMODAL_REQUIRE_PARQUET=1 requires it")
        pytest.skip("pyarrow is not installed: pip install 'anymodal[parquet]'")
    return pyarrow, pyarrow.parquet


def test_parquet_columns_are_channels(tmp_path: Path) -> None:
    pa, pq = pyarrow_modules()
    table = pa.table(
        {"ax": RECORDING[0].astype(np.float64), "ay": RECORDING[1].astype(np.int32), "az": RECORDING[2]}
    )
    pq.write_table(table, tmp_path / "walk.parquet")
    got = read(tmp_path / "walk.parquet")
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, RECORDING)


# --- orientation ----------------------------------------------------------------------------------


def test_channels_turns_samples_by_channels_around(tmp_path: Path) -> None:
    np.save(tmp_path / "first.npy", RECORDING)
    np.save(tmp_path / "last.npy", RECORDING.T)
    wide = write(
        tmp_path / "wide.csv", "\n".join(",".join(f"{v:g}" for v in row) for row in RECORDING) + "\n"
    )
    for path in (tmp_path / "first.npy", tmp_path / "last.npy", wide, write(tmp_path / "t.csv", TABLE)):
        np.testing.assert_array_equal(read(path, channels=3), RECORDING, err_msg=path.name)
    assert read(tmp_path / "last.npy").shape == (4, 3)  # without channels: as stored


def test_a_square_array_is_kept_as_laid_out(tmp_path: Path) -> None:
    square = np.arange(9, dtype=np.float32).reshape(3, 3)
    np.save(tmp_path / "square.npy", square)
    np.testing.assert_array_equal(read(tmp_path / "square.npy", channels=3), square)


def test_an_array_without_the_channels_is_refused_naming_its_shape(tmp_path: Path) -> None:
    np.save(tmp_path / "five.npy", np.zeros((5, 100), np.float32))
    np.save(tmp_path / "line.npy", np.zeros(100, np.float32))
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4), np.float32))
    assert refusal(tmp_path / "five.npy", channels=3) == (
        f"imu array must have shape (3, T) or (T, 3), got (5, 100): {tmp_path / 'five.npy'}"
    )
    assert refusal(tmp_path / "line.npy", channels=3) == (
        f"imu array must have shape (3, T) or (T, 3), got (100,): {tmp_path / 'line.npy'}"
    )
    assert refusal(tmp_path / "cube.npy") == (
        f"imu array must be 1-D or 2-D ([channels, samples]), got shape (2, 3, 4): {tmp_path / 'cube.npy'}"
    )


# --- what is refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "imu CSV file holds no numbers"),
        ("\n  \n\n", "imu CSV file holds no numbers"),
        ("ax,ay,az\n", "imu CSV file holds a header line and no numbers"),
        (
            "ax,ay,az\n1,2,3\n\n1,2\n1,2,3\n",
            "imu CSV line 4 has 2 values, earlier lines have 3 ('1,2' in a comma-separated table)",
        ),
        ("1,2,3\n1,2", "imu CSV is truncated: its last line (2) holds 2 of 3 values and no line end"),
        (
            "ax,ay,az\n1,2,3\n\n1,x,3\n",
            "imu CSV line 4, column 2 is not a number ('x' in a comma-separated table)",
        ),
        ("1,2,3\n1,2,x\n", "imu CSV line 2, column 3 is not a number ('x' in a comma-separated table)"),
        (
            "1 2\n3 4\n1 2,5\n",
            "imu CSV line 3, column 2 is not a number ('2,5' in a whitespace-separated table)",
        ),
        ("1;2\n1;\n", "imu CSV line 2, column 2 is not a number ('' in a semicolon-separated table)"),
        ("ax,ay\n1,2\n1,nan\n", "imu array contains NaN or infinite values"),
        ("ax,ay\n1,2\n-inf,2\n", "imu array contains NaN or infinite values"),
        ("ax,ay\n1,2\n1e39,2\n", "imu array holds values beyond float32's range (±3.4e38)"),
    ],
)
def test_bad_text_tables_are_refused_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "walk.csv", text)
    assert refusal(path) == f"{message}: {path}"


def test_a_table_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "walk.tsv"
    path.write_bytes(b"1\t2\n\xff\xfe\t3\n")
    assert refusal(path).startswith(f"imu TSV file is not UTF-8 text: {path} ('utf-8' codec can't decode")


def test_too_many_values_are_refused_before_they_are_all_read(tmp_path: Path) -> None:
    np.save(tmp_path / "walk.npy", RECORDING)
    np.savez(tmp_path / "walk.npz", acc=RECORDING)
    table = write(tmp_path / "walk.csv", TABLE)
    assert read(table, max_elements=12).shape == (3, 4)
    assert refusal(tmp_path / "walk.npy", max_elements=11) == (
        f"imu array is too large: {tmp_path / 'walk.npy'} holds 12 values (shape (3, 4)), the limit is 11"
    )
    assert refusal(tmp_path / "walk.npz", max_elements=11) == (
        f"imu array is too large: {tmp_path / 'walk.npz'}['acc'] holds 12 values (shape (3, 4)), "
        "the limit is 11"
    )
    assert refusal(table, max_elements=11) == (
        f"imu array is too large: {table} holds more than 11 values (3 per line), the limit is 11"
    )


def test_npz_without_the_array_asked_for_lists_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "walk.npz"
    np.savez(path, acc=RECORDING, gyro=RECORDING)
    assert refusal(path) == (
        f"imu .npz archive holds 2 arrays (acc, gyro), and which one to read is not named: {path}"
    )
    assert refusal(path, key="mag") == f"imu .npz archive has no array 'mag' (it holds acc, gyro): {path}"
    np.savez(path)
    assert refusal(path) == f"imu .npz archive holds no arrays: {path}"


def test_npz_refuses_pickles_and_damage_like_npy(tmp_path: Path) -> None:
    path = tmp_path / "walk.npz"
    np.savez(path, acc=np.array([{"evil": 1}, None], dtype=object))
    assert refusal(path) == f"imu array must hold integers or floats, not object: {path}['acc']"
    np.savez(path, acc=np.array([1.0, np.nan]))
    assert refusal(path) == f"imu array contains NaN or infinite values: {path}['acc']"
    path.write_bytes(path.read_bytes()[:100])
    assert refusal(path) == f"imu file is not a readable .npz archive: {path} (File is not a zip file)"


def test_an_unknown_suffix_lists_the_accepted_ones(tmp_path: Path) -> None:
    for name, said in (("walk.txt", ".txt"), ("walk", "a file without a suffix")):
        path = write(tmp_path / name, TABLE)
        assert refusal(path) == (
            f"imu array file must be .npy, .npz, .csv, .tsv, .parquet, not {said}: {path}"
        )


def test_empty_arrays_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "none.npy", np.zeros((0, 3), np.float32))
    assert (
        refusal(tmp_path / "none.npy") == f"imu array holds no values (shape (0, 3)): {tmp_path / 'none.npy'}"
    )


def test_bad_parquet_files_are_refused(tmp_path: Path) -> None:
    pa, pq = pyarrow_modules()
    path = tmp_path / "walk.parquet"
    pq.write_table(pa.table({"time": ["a", "b"], "ax": [1.0, 2.0]}), path)
    assert refusal(path) == f"imu Parquet file must hold only numeric columns, not time: {path}"
    pq.write_table(pa.table({"ax": pa.array([1.0, None])}), path)
    assert refusal(path) == f"imu Parquet file has missing values (nulls) in ax: {path}"
    pq.write_table(pa.table({"ax": [1.0, 2.0], "ay": [3, 4]}), path)
    assert refusal(path, max_elements=3) == (
        f"imu array is too large: {path} holds 4 values (2 rows of 2 columns), the limit is 3"
    )
    path.write_bytes(b"PAR1 not really PAR1")
    assert refusal(path).startswith(f"imu file is not a readable Parquet file: {path} (")


def test_parquet_without_pyarrow_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` raise ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = write(tmp_path / "walk.parquet", "PAR1")
    with pytest.raises(anymodal.InputError) as caught:
        read(path)
    assert caught.value.message == (
        f"imu file is Parquet, which needs pyarrow, and pyarrow is not installed: {path}"
    )
    assert caught.value.hint == "pip install 'anymodal[parquet]' (pyarrow), or export the table as .csv"


# --- properties -----------------------------------------------------------------------------------

FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
MATRICES = arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 6)), elements=FLOAT32)


@settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(matrix=MATRICES, header=st.booleans(), delimiter=st.sampled_from([",", ";", "\t", " "]))
def test_any_float32_table_reads_back(
    tmp_path: Path, matrix: np.ndarray, header: bool, delimiter: str
) -> None:
    rows = [delimiter.join(f"{value:.9g}" for value in row) for row in matrix]
    names = [delimiter.join(f"c{column}" for column in range(matrix.shape[1]))] if header else []
    path = write(tmp_path / "table.csv", "\n".join(names + rows) + "\n")
    np.testing.assert_array_max_ulp(read(path), matrix.T, maxulp=1)


def _toy(path: Path) -> np.ndarray:
    return anymodal.read_array(path, modality="toy", key="acc", channels=3)


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_damaged_files_are_input_errors_naming_the_file(tmp_path: Path, suffix: str) -> None:
    spec = anymodal.ModalitySpec(
        name="toy", loader=_toy, preprocess=lambda array: array, file_kinds=(suffix,), default_encoder="x"
    )
    valid = tmp_path / f"valid{suffix}"
    if suffix == ".npz":
        np.savez(valid, acc=RECORDING)
    else:
        write(valid, TABLE)
    fuzz_modality(spec, valid, examples=60)
