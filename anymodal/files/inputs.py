"""Checks every input file passes before a plugin's loader decodes it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from anymodal.contract.errors import InputError

#: Inputs larger than this are refused unless the config raises ``model.max_input_mb``.
DEFAULT_MAX_INPUT_MB = 2048


def check_input_file(
    path: str | os.PathLike[str],
    file_kinds: Sequence[str],
    *,
    modality: str,
    max_mb: float = DEFAULT_MAX_INPUT_MB,
) -> Path:
    """Return ``path`` as a Path after checking it exists, is readable, non-empty, not too large
    and has one of ``file_kinds`` (suffixes such as ``.wav``); raise :class:`InputError` naming
    the file and the fix otherwise. Decoding problems are the loader's to report."""
    file = Path(path).expanduser()
    if not file.exists():
        raise InputError(f"{modality} file not found: {file}", hint="check the path")
    if not file.is_file():
        raise InputError(f"{modality} input is not a file: {file}", hint="pass a file, not a directory")
    if not os.access(file, os.R_OK):
        raise InputError(f"{modality} file is not readable: {file}", hint="check its permissions")
    size = file.stat().st_size
    if size == 0:
        raise InputError(f"{modality} file is empty: {file}", hint="the file has 0 bytes; re-export it")
    if size > max_mb * 1024 * 1024:
        raise InputError(
            f"{modality} file is too large: {file} is {size / 2**20:.0f} MB, the limit is {max_mb:g} MB",
            hint="raise the limit with model.max_input_mb=<MB>",
        )
    kinds = [kind.lower() for kind in file_kinds]
    if kinds and file.suffix.lower() not in kinds:
        raise InputError(
            f"{modality} does not accept {file.suffix or 'files without a suffix'}: {file}",
            hint=f"{modality} accepts {', '.join(kinds)}",
        )
    return file
