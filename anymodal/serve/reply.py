"""A chat reply as the endpoints see it (:class:`Reply`), whichever way it is generated: alone,
holding the model (:class:`~anymodal.serve.service.SoloReply`), or as a row of the model's running
batch (:class:`~anymodal.serve.scheduler.BatchedReply`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import anyio

from anymodal.runtime.chat import ChatSession
from anymodal.serve import responses


class Reply(ABC):
    """A reply being generated: its pieces one at a time (:meth:`step`) or whole (:meth:`complete`),
    its usage, and :meth:`close_soon` to stop it. ``count_tokens`` counts a text's tokens."""

    def __init__(self, session: ChatSession, prompt_tokens: int, count_tokens: Callable[[str], int]) -> None:
        self.session = session
        self.prompt_tokens = prompt_tokens
        self.text = ""
        self.id = responses.completion_id()
        self.created = responses.now()
        self._count_tokens = count_tokens

    @abstractmethod
    def step(self) -> str | None:
        """The next piece of text, or None at the end (blocks: call it from a worker thread)."""

    async def astep(self) -> str | None:
        """:meth:`step` for the event loop: the next piece, or None at the end, without blocking
        it (here :meth:`step` in a worker thread)."""
        return await anyio.to_thread.run_sync(self.step)

    @abstractmethod
    def complete(self) -> tuple[str, str, dict[str, int]]:
        """The whole reply, its finish reason and usage; the reply is closed after (blocks: call it
        from a worker thread)."""

    @abstractmethod
    def close_soon(self) -> None:
        """Stop generating and give the model back, without waiting; twice is fine."""

    def usage(self) -> tuple[str, dict[str, int]]:
        """The finish reason (``length`` when the reply took all its ``max_tokens``, else ``stop``)
        and the usage counts."""
        tokens = self._count_tokens(self.text) if self.text else 0
        reason = "length" if tokens >= self.session.generation.max_new_tokens else "stop"
        return reason, responses.usage(self.prompt_tokens, tokens)
