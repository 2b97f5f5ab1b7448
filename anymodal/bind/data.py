"""The pairs ``anymodal bind`` learns from: JSON Lines, one pair a line, ``{"<modality>": path,
"image": path}`` (or the target modality the config names, ``"text": "..."`` for text). Paths are
relative to the file's folder. Every line is checked before anything is built; a bad one is one
error naming the file, the line and what to do.

The held-out split is fixed by the source path's hash and the seed, so it does not move when
pairs are added to the file, and a resumed run holds out the same pairs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from anymodal.contract.errors import UsageError
from anymodal.files.jsonl import json_object

#: Whether a target modality's value is text itself, not a path to a file.
TEXT_TARGETS = frozenset({"text"})


@dataclass(frozen=True)
class Pair:
    """One paired sample: the bound modality's file, and the target's file (or text)."""

    line: int
    source: Path
    target: Path | str


def read_pairs(file: str | Path, modality: str, target: str) -> list[Pair]:
    """Every pair of ``file``, each file checked to exist."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise UsageError(
            f"bind.data: no pairs file {path}",
            hint=f'write JSON Lines of {{"{modality}": "a.npy", "{target}": "a.png"}}; set bind.data to it',
        )
    folder = path.parent
    pairs = []
    with path.open(encoding="utf-8") as stream:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            pairs.append(_pair(raw, number, path, folder, modality, target))
    if len(pairs) < 2:
        raise UsageError(
            f"bind.data: {path} holds {len(pairs)} pair(s); binding needs at least 2 (each batch's other "
            "pairs are its negatives)",
            hint="add more pairs",
        )
    return pairs


def _pair(raw: str, number: int, file: Path, folder: Path, modality: str, target: str) -> Pair:
    where = f"{file}, line {number}"
    record = json_object(raw, where, hint=f'write {{"{modality}": ..., "{target}": ...}}')
    for key in (modality, target):
        if not isinstance(record.get(key), str) or not record[key]:
            raise UsageError(
                f"{where} has no {key!r} string (it has {', '.join(map(repr, record)) or 'no keys'})",
                hint=f"each line pairs the {modality} file with its {target}: "
                f'{{"{modality}": ..., "{target}": ...}}',
            )
    source = _file(folder, record[modality], where, modality)
    value: Path | str = (
        record[target] if target in TEXT_TARGETS else _file(folder, record[target], where, target)
    )
    return Pair(number, source, value)


def _file(folder: Path, name: str, where: str, key: str) -> Path:
    path = (folder / name).expanduser()
    if not path.is_file():
        raise UsageError(
            f"{where}: the {key} file {path} does not exist", hint="fix the path (relative to the file)"
        )
    return path


def split(pairs: list[Pair], eval_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """``(train, held out)``: about ``eval_fraction`` of the pairs held out, by the source file's
    path hashed with ``seed``; at least one pair each way when the fraction is above 0."""
    if eval_fraction <= 0:
        return list(pairs), []

    def score(pair: Pair) -> float:
        digest = hashlib.sha256(f"{seed}:{pair.source}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    ranked = sorted(pairs, key=score)
    count = min(max(1, round(eval_fraction * len(pairs))), len(pairs) - 1)
    held = {id(pair) for pair in ranked[:count]}
    return [p for p in pairs if id(p) not in held], [p for p in pairs if id(p) in held]
