"""Reading a training or evaluation data file: a JSON list of records, or JSONL with one per line,
told apart by content; every way the file itself can be wrong is one InputError naming it."""

from __future__ import annotations

import json
from pathlib import Path

from anymodal.contract.errors import InputError


def load_entries(file: Path) -> list[tuple[str, object]]:
    """(source, parsed value) per record. The format is told by content, so a misnamed file works."""
    if not file.exists():
        raise InputError(f"data file {file} not found", hint="check the training data path")
    if not file.is_file():
        raise InputError(f"data file {file} is not a file")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"data file {file} is not UTF-8 text (bad byte at offset {error.start})") from None
    except OSError as error:
        raise InputError(f"cannot read data file {file}: {error.strerror}") from None
    content = text.lstrip()
    if not content:
        raise InputError(f"data file {file} is empty")
    entries = _parse_json_list(file, text) if content.startswith("[") else _parse_json_lines(file, text)
    if not entries:
        raise InputError(f"data file {file} has no records")
    return entries


def _parse_json_list(file: Path, text: str) -> list[tuple[str, object]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise InputError(f"data file {file} is not valid JSON: {error.msg} at {where}") from None
    return [(f"{file.name}[{index}]", item) for index, item in enumerate(value)]


def _parse_json_lines(file: Path, text: str) -> list[tuple[str, object]]:
    entries: list[tuple[str, object]] = []
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends, which splitlines breaks on.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            entries.append((f"{file.name}:{number}", json.loads(line)))
        except json.JSONDecodeError as error:
            whole = _json_or_none(text)  # a pretty-printed object looks like broken JSONL: say what it is
            if whole is not None:
                hint = "use a JSON list of records, or JSONL with one record per line"
                message = f"data file {file}: top level is {json_type(whole)}, not a list"
                raise InputError(message, hint=hint) from None
            message = f"data file {file} line {number} is not valid JSON: {error.msg} at column {error.colno}"
            raise InputError(message, hint="a JSONL file holds one JSON object per line") from None
    return entries


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
