"""Files: written whole or not at all (a reader never sees a half-written one), hashed, and output
directories that must not overwrite anything."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anymodal.contract.errors import UsageError


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write to; renamed onto ``target`` when the block ends
    without an error, removed when it fails. The parent directory is created if needed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def file_digest(file: Path) -> str:
    """SHA-256 of a file, read in chunks so that a large one is never held in memory at once."""
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_empty_directory(directory: Path, option: str = "--output") -> None:
    """A UsageError unless ``directory`` is absent or an empty directory: nothing gets overwritten."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(
            f"{directory} already exists and is not an empty directory",
            hint=f"choose another place with {option}, or remove it first",
        )
