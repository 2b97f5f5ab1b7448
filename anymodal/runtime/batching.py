"""Chat turns decoded together: each turn of its own :class:`~anymodal.runtime.chat.ChatSession` a row
of one :class:`~anymodal.GenerationBatch` (``generation.max_batch`` of them at a time).

:class:`BatchedTurn` is one turn in a batch: started from its session's prompt (continuing the
session's kept KV cache when it has one), its text taken from the row as it comes, and handed
back to the session at the end with the row's cache. The server's scheduler
(:mod:`anymodal.serve.scheduler`) drives turns so, one step at a time, from many threads'
requests; :func:`ask_together` drives them in-process for ``anymodal eval``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from anymodal.contract.bridge import BatchRow, GenerationBatch
from anymodal.runtime.chat import ChatSession, TurnPrompt, encode_together


@dataclass(eq=False)
class BatchedTurn:
    """One session's turn as a row of a batch."""

    session: ChatSession
    prompt: TurnPrompt
    row: BatchRow

    @classmethod
    def start(cls, batch: GenerationBatch, session: ChatSession, text: str) -> BatchedTurn:
        """The reply to ``text`` in ``session`` (with its attached files), added to ``batch``; it
        runs from the batch's next step. Raises what :meth:`ChatSession.ask` would."""
        prompt = session.begin_turn(text)
        keep = session.prefixes is not None
        return cls(session, prompt, batch.add(prompt.embeds, session.generation, prompt.past, keep=keep))

    def drain(self) -> list[str]:
        """The reply's pieces since the last call, added to the turn's reply."""
        pieces = self.row.drain()
        self.prompt.turn.reply += "".join(pieces)
        return pieces

    def end(self) -> None:
        """Hand the turn, ended (or stopped, or failed), to the session's history, and the row's KV
        cache to the session's store of them."""
        self.drain()
        self.prompt.turn.interrupted = self.row.finish_reason not in ("stop", "length")
        self.session.end_turn(self.prompt, self.row.cache, self.row.fed_ids)


def ask_together(asks: Iterable[tuple[ChatSession, str]], max_batch: int) -> Iterator[tuple[int, str]]:
    """Answer every ``(session, text)`` of ``asks`` (sessions of one model), at most ``max_batch``
    decoded together in one batch, a new one starting as soon as one ends: ``(its index in asks,
    its reply)``, as each ends. ``asks`` is read only as places free up (so a lazy one prepares
    its inputs as they are needed). A turn that cannot start raises at once, and the batch is
    closed, the turns running in it stopped."""
    pending = enumerate(asks)
    running: dict[int, BatchedTurn] = {}
    batch: GenerationBatch | None = None
    exhausted = False
    try:
        while running or not exhausted:
            starting: list[tuple[int, ChatSession, str]] = []
            while not exhausted and len(running) + len(starting) < max_batch:
                entry = next(pending, None)
                if entry is None:
                    exhausted = True
                else:
                    starting.append((entry[0], *entry[1]))
            if starting:
                encode_together([session for _, session, _ in starting])
            for index, session, text in starting:
                batch = batch or session.model.bridge.open_batch()
                running[index] = BatchedTurn.start(batch, session, text)
            if batch is None or not running:
                return
            batch.step()
            for index, turn in list(running.items()):
                if turn.row.finished:
                    turn.end()
                    del running[index]
                    yield index, turn.prompt.turn.reply
    finally:
        if batch is not None:
            batch.close()
