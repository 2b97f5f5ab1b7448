"""What a benchmark plugin registers: how to read a public benchmark's files as published into
questions, and how to score the model's replies exactly as the benchmark's official script does.

``anymodal eval --benchmark NAME --data PATH`` reads PATH with the spec's ``read``, asks the model
every question (each in a fresh conversation, its files attached before its text, as LLaVA's
evaluation scripts put ``<image>`` first), writes every reply to a predictions file as it comes and
hands all replies to the spec's ``score``. Torch-free, like every spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchmarkItem:
    """One question of a benchmark, as the model is asked it.

    id: unique among the benchmark's items (a resumed run matches replies to items by it).
    question: the text sent, without placeholders; the inputs of ``media`` go before it.
    media: ``(modality, file)`` per input, in order (POPE: one image; a text-only item: none).
    fields: what ``score`` needs besides the reply (the label, the split, the subject), as JSON
    values: they are written beside each reply in the predictions file.
    """

    id: str
    question: str
    media: tuple[tuple[str, Path], ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkSpec:
    """A public benchmark, read from its official files and scored by its official rules.

    read(path) returns every item under ``path`` (a file or a folder, as ``data`` says), raising
    :class:`anymodal.UsageError` naming the file and what is wrong with it; it reads no media.
    score(items, replies) returns the metrics as a JSON object (nested dicts of numbers and
    counts), ``replies[i]`` being the model's reply to ``items[i]``.
    data: what PATH is and where the files are published (shown by ``anymodal eval --help`` and
    in errors). max_new_tokens: the reply length the benchmark's usual evaluation allows, used
    unless the user sets ``generation.max_new_tokens``.
    """

    name: str
    read: Callable[[Path], Sequence[BenchmarkItem]]
    score: Callable[[Sequence[BenchmarkItem], Sequence[str]], dict[str, Any]]
    description: str = ""
    data: str = ""
    max_new_tokens: int | None = None
