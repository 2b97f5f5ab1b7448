"""JSON Lines outputs written a line at a time so that a killed run can go on where it stopped:
each line appended whole, flushed and fsync'd; on a rerun, the lines already there read back by
their id, and a last line cut short by the kill (no newline, or not JSON) cut off."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anymodal.contract.errors import UsageError


@dataclass(frozen=True)
class Appended:
    """What an earlier run left in an output: its whole lines by id, and how many bytes of the file
    to keep (all but a half-written last line, ``cut_bytes`` long)."""

    path: Path
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    keep_bytes: int = 0
    cut_bytes: int = 0


def read_appended(path: Path, key: str, what: str, writer: str, hint: str) -> Appended:
    """The lines of ``path`` (none if it is missing) by their ``key`` field, a non-empty string.

    A damaged line followed by others, or an id written twice, is refused: the file is not one
    run's output (``what`` names its lines, ``writer`` the tool that writes them, ``hint`` how to
    start over), and appending would mix two runs."""
    lines: dict[str, dict[str, Any]] = {}
    numbers: dict[str, int] = {}
    keep = size = 0
    damaged: int | None = None
    if path.exists():
        with path.open("rb") as file:
            for number, raw in enumerate(file, 1):
                size += len(raw)
                if damaged is not None:  # the damaged line was not the last one
                    raise UsageError(f"line {damaged} of {path} is not {what}, and more follow it", hint=hint)
                record = _whole_line(raw, key)
                if not raw.strip() and raw.endswith(b"\n"):
                    keep = size
                elif record is None:
                    damaged = number
                elif record[key] in lines:
                    raise UsageError(
                        f"{path} answers {key} {record[key]!r} twice (lines {numbers[record[key]]} and "
                        f"{number}): it was not written by one {writer}",
                        hint=hint,
                    )
                else:
                    lines[record[key]], numbers[record[key]] = record, number
                    keep = size
    return Appended(path, lines, keep, size - keep)


@contextlib.contextmanager
def open_appended(earlier: Appended) -> Iterator[Callable[[Mapping[str, Any]], None]]:
    """``earlier.path`` opened to append whole lines, its half-written last line cut off first; the
    ``with`` block gets ``write(record)``, which returns once the line is on disk."""
    path = earlier.path
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(record: Mapping[str, Any]) -> None:
        data = memoryview((json.dumps(record, ensure_ascii=False) + "\n").encode())
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)

    try:
        if earlier.cut_bytes:
            os.ftruncate(fd, earlier.keep_bytes)
            os.fsync(fd)
        if created:  # the new file's name on disk too, not only its lines
            _fsync_folder(path.parent)
        yield write
    finally:
        os.close(fd)


def _whole_line(raw: bytes, key: str) -> dict[str, Any] | None:
    """The record of a whole line with a non-empty string ``key``, or None for a damaged or
    half-written one."""
    if not raw.endswith(b"\n"):
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    value = record.get(key) if isinstance(record, dict) else None
    return record if isinstance(value, str) and value else None


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform that cannot open folders (Windows): the file's own fsync must do
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
