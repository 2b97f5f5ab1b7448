"""Reading a whole text file that a user pointed at, with one clear error for each way it fails."""

from __future__ import annotations

from pathlib import Path

from anymodal.contract.errors import UsageError


def read_text(path: Path, what: str, form: str, hint: str | None = None, newline: str | None = None) -> str:
    """The UTF-8 text of ``path``, ``what`` (e.g. "a POPE question file") being what it should be
    and ``form`` what that is written in (e.g. "JSON Lines"): a missing file, one that is not UTF-8
    and one that cannot be read are each a UsageError naming the file. A byte-order mark is dropped.
    ``newline`` as for :func:`open` (``""`` keeps line endings as they are, as :mod:`csv` wants)."""
    try:
        with path.open(encoding="utf-8-sig", newline=newline) as file:
            return file.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; {what} was expected here", hint=hint) from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text; {what} is {form}", hint=hint) from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read it as {what} ({error.strerror})", hint=hint) from None
