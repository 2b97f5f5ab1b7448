"""Asking a model many questions about files, each in a fresh conversation: what ``anymodal eval``
does for its conversations and for a benchmark's questions alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anymodal.contract.errors import AnymodalError

if TYPE_CHECKING:
    from anymodal.runtime.chat import ChatSession


@dataclass(frozen=True)
class Questions:
    """Questions about the same files (``(modality, path)`` each, attached in order)."""

    media: Sequence[tuple[str, str | Path]]
    texts: Sequence[str]


def ask_groups(
    session: ChatSession,
    groups: Iterable[Questions],
    max_batch: int = 1,
    failed: Callable[[int, str], None] | None = None,
) -> Iterator[tuple[int, int, str]]:
    """``(group index, question index, reply)`` for every question of ``groups``, as each ends.

    Each question is asked in a fresh conversation with its group's files attached. A group's files
    are decoded and encoded once for all its questions (its sessions share a cache of encodings
    kept to the group, so it does not grow with the data, and ``session``'s model, processor,
    generation settings and kept KV caches). Up to ``max_batch`` questions are decoded together when
    the model's bridge can, the next group's files read as places free up; the replies are the same
    either way (greedy). A group whose files fail to load (a missing or corrupt file) is skipped,
    ``failed(group index, error)`` told of it.
    """
    from anymodal.runtime.batching import ask_together
    from anymodal.runtime.chat import ChatSession

    asked: list[tuple[int, int]] = []

    def asks() -> Iterator[tuple[ChatSession, str]]:
        for number, group in enumerate(groups):
            # a group's questions share their prompt's start, its files: the KV caches are shared too
            per_group = ChatSession(
                session.model, session.processor, session.generation, session.system_prompt,
                prefixes=session.prefixes,
            )  # fmt: skip
            try:
                prepared = [per_group.model.prepare(modality, path) for modality, path in group.media]
                for inputs in prepared:
                    _ = inputs.key  # hash now, as the file is when it was read
            except AnymodalError as error:
                if failed is not None:
                    failed(number, str(error))
                continue
            for index, text in enumerate(group.texts):
                asked.append((number, index))
                yield per_group.fork(prepared), text

    if max_batch > 1 and session.model.bridge.supports_batching:
        answers = ask_together(asks(), max_batch)
    else:
        answers = ((index, "".join(one.ask(text))) for index, (one, text) in enumerate(asks()))
    for index, reply in answers:
        yield (*asked[index], reply)
