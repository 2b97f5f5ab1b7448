"""The ``-o/--output DIR`` option of the commands that write a directory (new-plugin, convert,
export); each refuses one that exists and is not empty."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def output_directory(
    *, required: bool = True, help: str = "Directory to write (absent or empty)."
) -> Callable[[Any], Any]:
    return click.option(
        "-o", "--output", required=required, type=click.Path(path_type=Path, file_okay=False), help=help
    )
