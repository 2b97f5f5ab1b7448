"""One line of a JSON Lines file read as a JSON object, or one UsageError saying where it is not."""

from __future__ import annotations

import json
from typing import Any

from anymodal.contract.errors import UsageError


def json_object(line: str, where: str, hint: str | None = None) -> dict[str, Any]:
    """``line`` parsed as a JSON object. ``where`` names it in the error (``"pairs.jsonl, line 3"``);
    ``hint`` goes with the error for a line that is JSON but not an object."""
    try:
        record = json.loads(line)
    except ValueError as error:
        raise UsageError(f"{where} is not JSON: {error}", hint="one JSON object per line") from None
    if not isinstance(record, dict):
        raise UsageError(f"{where} is not a JSON object", hint=hint)
    return record
