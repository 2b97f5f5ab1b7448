"""Reading one sensor recording, a numeric array, from the files sensors and their tools write
(public API for modality plugins).

:func:`read_array` reads ``.npy``, ``.npz``, ``.csv``/``.tsv`` and (with pyarrow) ``.parquet`` and
returns float32 ``[channels, samples]``, C-contiguous. Every refusal is an
:class:`anymodal.InputError` naming the modality, the file and what is wrong, with a hint.

Layout: a ``.npy`` or ``.npz`` array is taken as stored, ``[channels, samples]``; a table (CSV,
TSV, Parquet) has one sample per row and one channel per column, so it is transposed. A 1-D array
is one channel, ``[1, samples]``. Given ``channels=C``, an array whose first axis is not C but
whose second is (``[samples, C]``, or a table written one channel per row) is transposed, and one
with C on neither axis is refused naming its shape; ``[C, C]`` is kept as the format lays it out,
and a 1-D array of C values is C channels of one sample.

Arrays are bounded by ``max_elements`` (default :data:`MAX_NPY_ELEMENTS`) before they are read in
full: ``.npy`` and ``.npz`` members by their header (the same reader as :func:`load_npy`, so
pickles, strings, booleans and lying headers are refused alike), tables by reading at most one
row past the limit, Parquet files by their metadata. NaN and infinite values are refused, and so
are float64 values beyond float32's range.

Text tables (UTF-8, a BOM allowed, any line ends) are parsed by :func:`numpy.loadtxt`, after a
look at their first 65,536 characters: the delimiter is the first of tab, semicolon and
comma found on most of their non-blank lines, else whitespace (runs of spaces or tabs; also a
one-column table), and the first non-blank line is a header, skipped, when its first cell is not a
number. Lines of only whitespace are skipped anywhere. numpy's complaints about a cell or a row are
turned into messages naming the file's line (and column). numpy and pyarrow are imported inside
the functions, so ``import anymodal`` stays cheap.
"""

from __future__ import annotations

import itertools
import lzma
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from anymodal.contract.errors import InputError
from anymodal.preprocess.decode import MAX_NPY_ELEMENTS, check_finite, load_npy, read_npy_stream, too_large

if TYPE_CHECKING:
    import numpy as np

#: The suffixes :func:`read_array` reads, in the order its messages list them.
_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".parquet")

#: How much of a text table is looked at to find its delimiter and header, in characters.
_SAMPLE_CHARS = 65_536
#: Delimiters looked for, by priority (a semicolon table may hold decimal commas); else whitespace.
_DELIMITERS = ("\t", ";", ",")
_DELIMITER_NAMES = {"\t": "tab", ";": "semicolon", ",": "comma", None: "whitespace"}
#: What a damaged ``.npz`` archive makes :mod:`zipfile` and its decompressors raise.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
)

# numpy.loadtxt's complaints about the rows it was handed: a cell (row counted from 0) and a row of
# another width (counted from 1).
_BAD_CELL = re.compile(
    r"could not convert string (?P<cell>.*) to \w+ at row (?P<row>\d+), column (?P<column>\d+)"
)
_RAGGED = re.compile(r"number of columns changed from (?P<width>\d+) to (?P<got>\d+) at row (?P<row>\d+)")


def read_array(
    path: str | Path,
    *,
    modality: str,
    key: str | None = None,
    channels: int | None = None,
    max_elements: int | None = None,
) -> np.ndarray:
    """Read one recording from ``path`` as float32 ``[channels, samples]`` (see the module docstring).

    ``key`` names the array to read from a ``.npz`` archive holding several (other formats ignore
    it); ``channels``, when given, is how many the recording must have, and turns ``[samples,
    channels]`` around; ``max_elements`` caps the values read (default :data:`MAX_NPY_ELEMENTS`).
    The format is the suffix's, case-insensitively. Raises :class:`InputError` for anything else.
    """
    import numpy as np

    file = Path(path)
    cap = MAX_NPY_ELEMENTS if max_elements is None else max_elements
    suffix = file.suffix.lower()
    source: Path | str = file
    if suffix == ".npy":
        array = load_npy(file, modality=modality, max_elements=cap)
    elif suffix == ".npz":
        array, source = _read_npz(file, key, modality, cap)
    elif suffix in (".csv", ".tsv"):
        array = _read_text(file, suffix[1:].upper(), modality, cap).T
    elif suffix == ".parquet":
        array = _read_parquet(file, modality, cap)
    else:
        raise InputError(
            f"{modality} array file must be {', '.join(_SUFFIXES)}, "
            f"not {suffix or 'a file without a suffix'}: {file}",
            hint="save the recording in one of those formats (numpy.save writes .npy)",
        )
    oriented = _channels_first(array, channels, modality, source)
    with np.errstate(over="ignore"):
        values = np.ascontiguousarray(oriented, dtype=np.float32)
    # The source was checked finite already, so anything infinite now overflowed float32.
    if array.dtype.kind == "f" and array.dtype.itemsize > 4 and not np.isfinite(values).all():
        raise InputError(
            f"{modality} array holds values beyond float32's range (±3.4e38): {source}",
            hint="rescale the values (to other units, for example) before saving",
        )
    return values


def _channels_first(array: np.ndarray, channels: int | None, modality: str, source: Path | str) -> np.ndarray:
    """``array`` as ``[channels, samples]``: 1-D is one channel, and a second axis of ``channels``
    (with a first axis that is not) is transposed; other shapes, and empty arrays, are refused."""
    shape = array.shape
    table = array.reshape(1, -1) if array.ndim == 1 else array
    if table.ndim != 2 or (channels is not None and channels not in table.shape):
        if channels is None:
            raise InputError(
                f"{modality} array must be 1-D or 2-D ([channels, samples]), got shape {shape}: {source}",
                hint="save one recording per file, one row per channel",
            )
        raise InputError(
            f"{modality} array must have shape ({channels}, T) or (T, {channels}), got {shape}: {source}",
            hint=f"pass a recording of {channels} channels, one per row or one per column",
        )
    if table.size == 0:
        raise InputError(
            f"{modality} array holds no values (shape {shape}): {source}",
            hint="pass a recording of at least one sample",
        )
    return table.T if channels is not None and table.shape[0] != channels else table


def _read_npz(file: Path, key: str | None, modality: str, cap: int) -> tuple[np.ndarray, str]:
    """The array ``key`` of a ``.npz`` archive (its only one without a key), read like a ``.npy``
    file, and how messages name it (``walk.npz['acc']``)."""
    try:
        with zipfile.ZipFile(file) as archive:
            name = _npz_member(archive, file, key, modality)
            source = f"{file}[{name!r}]"
            info = archive.getinfo(f"{name}.npy")
            with archive.open(info) as member:
                stream = cast(BufferedIOBase, member)  # a zipfile.ZipExtFile; typeshed says IO[bytes]
                return read_npy_stream(
                    stream, info.file_size, source, modality=modality, max_elements=cap
                ), source
    except _ZIP_ERRORS as error:
        raise InputError(
            f"{modality} file is not a readable .npz archive: {file} ({error})",
            hint="save the arrays again with numpy.savez",
        ) from error


def _npz_member(archive: zipfile.ZipFile, file: Path, key: str | None, modality: str) -> str:
    """The name of the array to read: ``key``, or the archive's only array."""
    names = [member[: -len(".npy")] for member in archive.namelist() if member.endswith(".npy")]
    if not names:
        raise InputError(
            f"{modality} .npz archive holds no arrays: {file}", hint="save the recording with numpy.savez"
        )
    listed = ", ".join(names)
    if key is None and len(names) > 1:
        raise InputError(
            f"{modality} .npz archive holds {len(names)} arrays ({listed}), "
            f"and which one to read is not named: {file}",
            hint="save only the recording in the archive",
        )
    if key is not None and key not in names:
        raise InputError(
            f"{modality} .npz archive has no array {key!r} (it holds {listed}): {file}",
            hint=f"save the recording under the name {key!r} (numpy.savez(path, {key}=array))",
        )
    return names[0] if key is None else key


@dataclass(frozen=True)
class _TextLayout:
    """What a text table's first lines say: its delimiter, whether it has a header, what to read."""

    delimiter: str | None  # None: whitespace
    header: bool
    skip: int  # lines before the rows: the header line's number, or 0
    rows: int  # the most rows to read: enough to pass the element cap by one row


def _read_text(file: Path, kind: str, modality: str, cap: int) -> np.ndarray:
    """A delimited text table as float64 ``[rows, columns]``, parsed by :func:`numpy.loadtxt`."""
    import numpy as np

    with _text_errors(file, kind, modality), file.open(encoding="utf-8-sig", newline=None) as stream:
        layout = _text_layout(stream.read(_SAMPLE_CHARS), cap)
        stream.seek(0)
        rows = (line for _, line in _numbered_rows(stream, layout))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                table = np.loadtxt(rows, delimiter=layout.delimiter, comments=None, ndmin=2)
        except UnicodeDecodeError:
            raise
        except ValueError as error:
            raise _table_error(error, file, kind, layout, modality) from error
    if table.shape[0] == 0:
        raise InputError(
            f"{modality} {kind} file holds {'a header line and ' if layout.header else ''}no numbers: {file}",
            hint="write one sample per line" + (", after the header" if layout.header else ""),
        )
    if table.size > cap:
        raise too_large(modality, file, f"more than {cap:,} values ({table.shape[1]} per line)", cap)
    check_finite(table, modality, file)
    return table


def _numbered_rows(stream: Iterable[str], layout: _TextLayout) -> Iterator[tuple[int, str]]:
    """The table's rows with their line numbers: the lines after the header that hold more than
    whitespace, at most ``layout.rows`` of them. numpy is handed these lines only, so that its row
    numbers count them, and a line is found again by its row number."""
    numbered = enumerate(stream, 1)
    return itertools.islice(
        ((n, line) for n, line in numbered if n > layout.skip and line.strip()), layout.rows
    )


@contextmanager
def _text_errors(file: Path, kind: str, modality: str) -> Iterator[None]:
    """Turn a text file's decoding and reading errors into :class:`InputError`."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise InputError(
            f"{modality} {kind} file is not UTF-8 text: {file} ({error})",
            hint=f"save it as a plain-text {kind}",
        ) from error
    except OSError as error:
        raise InputError(
            f"{modality} file cannot be read: {file} ({error})", hint="check the file"
        ) from error


def _text_layout(sample: str, cap: int) -> _TextLayout:
    """Delimiter, header and rows to read, from the first characters of a table."""
    lines = [(number, line) for number, line in enumerate(sample.split("\n"), 1) if line.strip()]
    delimiter = _delimiter([line for _, line in lines])
    header = bool(lines) and _is_header(lines[0][1], delimiter)
    data = lines[1:] if header else lines
    # The first row's width is an estimate (the sample may end inside it), so the element cap is
    # checked again on the table read.
    width = len(data[0][1].split(delimiter)) if data else 1
    return _TextLayout(delimiter, header, lines[0][0] if header else 0, cap // width + 1)


def _delimiter(lines: list[str]) -> str | None:
    """The first of tab, semicolon and comma found on most of ``lines``, else None (whitespace).
    Most, not all, so that one bad row is reported as a bad row."""
    return next((mark for mark in _DELIMITERS if 2 * sum(mark in line for line in lines) > len(lines)), None)


def _is_header(line: str, delimiter: str | None) -> bool:
    """Whether the first cell of ``line`` is not a number (as numpy reads numbers)."""
    import numpy as np

    try:
        np.loadtxt([line], delimiter=delimiter, comments=None, usecols=0)
    except ValueError:
        return True
    return False


def _table_error(error: ValueError, file: Path, kind: str, layout: _TextLayout, modality: str) -> InputError:
    """numpy's complaint about a cell or a row, said with the file's line (and column) number."""
    complaint = str(error)
    cell, ragged = _BAD_CELL.search(complaint), _RAGGED.search(complaint)
    if cell:
        found = _file_line(file, layout, int(cell["row"]))
        if found:
            return InputError(
                f"{modality} {kind} line {found[0]}, column {cell['column']} is not a number "
                f"({cell['cell']} in a {_DELIMITER_NAMES[layout.delimiter]}-separated table): {file}",
                hint="keep at most one header line, the first; every other line must hold numbers only",
            )
    if ragged:
        found = _file_line(file, layout, int(ragged["row"]) - 1)
        width, got = int(ragged["width"]), int(ragged["got"])
        if found and got < width and not found[1].endswith("\n"):
            return InputError(
                f"{modality} {kind} is truncated: its last line ({found[0]}) holds {got} of {width} values "
                f"and no line end: {file}",
                hint="the file was cut short; export the recording again",
            )
        if found:
            return InputError(
                f"{modality} {kind} line {found[0]} has {got} values, earlier lines have {width} "
                f"({_excerpt(found[1])} in a {_DELIMITER_NAMES[layout.delimiter]}-separated table): {file}",
                hint="every row must have the same number of columns",
            )
    return InputError(
        f"{modality} {kind} file is not a table of numbers: {file} ({complaint})",
        hint="write one sample per line, numbers only, with at most one header line",
    )


def _file_line(file: Path, layout: _TextLayout, row: int) -> tuple[int, str] | None:
    """The number and text of the line holding table row ``row`` (counted from 0)."""
    with file.open(encoding="utf-8-sig", newline=None) as stream:
        return next(itertools.islice(_numbered_rows(stream, layout), row, None), None)


def _excerpt(line: str, chars: int = 40) -> str:
    """A line as messages quote it: its repr, cut to ``chars`` characters with ``...``."""
    text = line.rstrip("\n")
    return repr(text) if len(text) <= chars else f"{text[:chars]!r}..."


def _read_parquet(file: Path, modality: str, cap: int) -> np.ndarray:
    """A Parquet table of numeric columns as ``[columns, rows]``, bounded by its metadata."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{modality} file is Parquet, which needs pyarrow, and pyarrow is not installed: {file}",
            hint="pip install 'anymodal[parquet]' (pyarrow), or export the table as .csv",
        ) from None
    import numpy as np

    try:
        with pq.ParquetFile(file) as parquet:
            rows, columns = parquet.metadata.num_rows, parquet.metadata.num_columns
            if rows * columns > cap:
                raise too_large(
                    modality, file, f"{rows * columns:,} values ({rows:,} rows of {columns} columns)", cap
                )
            _check_numeric_columns(parquet.schema_arrow, file, modality)
            table = parquet.read()
    except (pa.ArrowException, OSError) as error:
        raise InputError(
            f"{modality} file is not a readable Parquet file: {file} ({error})", hint="check the file"
        ) from error
    missing = [
        name for name, column in zip(table.column_names, table.columns, strict=True) if column.null_count
    ]
    if missing:
        raise InputError(
            f"{modality} Parquet file has missing values (nulls) in {', '.join(missing)}: {file}",
            hint="fill or drop the missing samples before saving",
        )
    array = np.stack([column.to_numpy() for column in table.columns])
    check_finite(array, modality, file)
    return array


def _check_numeric_columns(schema: Any, file: Path, modality: str) -> None:
    """Refuse a Parquet schema without columns, or with columns of other than integers or floats."""
    import pyarrow as pa

    if not schema.names:
        raise InputError(
            f"{modality} Parquet file holds no columns: {file}",
            hint="save the recording with one column per channel",
        )
    wrong = [
        field.name
        for field in schema
        if not (pa.types.is_integer(field.type) or pa.types.is_floating(field.type))
    ]
    if wrong:
        raise InputError(
            f"{modality} Parquet file must hold only numeric columns, not {', '.join(wrong)}: {file}",
            hint="drop the other columns, or convert them to numbers, before saving",
        )
