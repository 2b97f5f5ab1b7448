"""Continuous batching for the served model: every chat reply in progress is a row of one
:class:`~anymodal.GenerationBatch`, one forward per step for all of them.

A request whose media are ready is :meth:`Scheduler.submit`'ted; the scheduler runs in "ticks" on
the model's one thread (:class:`~anymodal.serve.worker.ModelThread`), each queued behind whatever
else waits there (another request's media, an embeddings request), so nothing waits long for a
batch. A tick starts the waiting requests while there is room (``max_batch`` rows): their inputs
not encoded yet are encoded together (one encoder batch per modality and shape, across
requests), each prompt is built (continuing a kept KV cache when the conversation has one) and
added to the batch; then the batch takes one step, and every row's new text goes to its
:class:`BatchedReply`, which the request's own thread reads. A row that ends gives its turn, and its
KV cache, back to the request's session and frees the request's ticket. When the batch is idle, the
first request waits ``wait_s`` for others to start with it.

A request that fails to start (its placeholders do not match its inputs, ...) fails alone, before
its reply begins, as it would alone; a forward that fails ends every row in the batch with that
error, and the next request starts a fresh batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from anymodal.contract.bridge import GenerationBatch
from anymodal.runtime.batching import BatchedTurn
from anymodal.runtime.chat import ChatSession, encode_together
from anymodal.serve.reply import Reply
from anymodal.serve.worker import ModelThread, Ticket

#: What a finished request hands back: its session, the keys of the encodings it used, its ticket.
Finish = Callable[[ChatSession, Sequence[str], Ticket], None]


class BatchedReply(Reply):
    """A reply generated as a row of the running batch. The scheduler hands it its pieces; its
    reader wakes only when it has something to read: each new piece when it streams (all the
    pieces that came since, as one), only the end when it waits for the whole reply, so that a
    step of many rows does not wake every request's thread."""

    def __init__(
        self, scheduler: Scheduler, session: ChatSession, count_tokens: Callable[[str], int]
    ) -> None:
        super().__init__(session, 0, count_tokens)
        self._scheduler = scheduler
        self._ready = threading.Condition()
        self._pieces: list[str] = []
        self._end: BaseException | None = None
        self._ended = False  # the scheduler has handed over the end
        self._read_all = False  # the reader has taken the end
        self._streaming = False  # the reader waits for pieces, not only for the end
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    def wait_started(self) -> None:
        """Block until the reply's prompt is in the batch; raise what stopped it getting there."""
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    def step(self) -> str | None:
        with self._ready:
            self._streaming = True
            while not self._pieces and not self._ended:
                self._ready.wait()
            return self._take_pieces()

    async def astep(self) -> str | None:
        """The next pieces as one, or None at the end; the scheduler wakes the event loop itself
        (``call_soon_threadsafe``), with no worker thread in between."""
        while True:
            with self._ready:
                if self._pieces or self._ended:
                    return self._take_pieces()
                loop = asyncio.get_running_loop()
                woken = loop.create_future()
                self._wake = (loop, woken)
            await woken

    def _take_pieces(self) -> str | None:
        """Every piece that came since the last read, as one; None, or the error, at the end
        (call it holding ``_ready``)."""
        if self._read_all:
            return None
        pieces, self._pieces = self._pieces, []
        if not pieces:
            self._take_end()
            return None
        text = "".join(pieces)
        self.text += text
        return text

    def complete(self) -> tuple[str, str, dict[str, int]]:
        try:
            with self._ready:
                while not self._ended:
                    self._ready.wait()
                self.text += "".join(self._pieces)
                self._pieces = []
                self._take_end()
        finally:
            self.close_soon()
        return (self.text, *self.usage())

    def _take_end(self) -> None:
        self._read_all = True
        if self._end is not None:
            raise self._end

    def close_soon(self) -> None:
        self._scheduler.cancel(self)

    # -- from the scheduler ---------------------------------------------------------------------

    def started(self, error: BaseException | None) -> None:
        self._start_error = error
        self._started.set()

    def put(self, piece: str) -> None:
        with self._ready:
            self._pieces.append(piece)
            if self._streaming:
                self._ready.notify()
            self._wake_loop()

    def end(self, error: BaseException | None) -> None:
        """No more pieces: the reply ended, or failed with ``error``."""
        with self._ready:
            self._ended, self._end = True, error
            self._ready.notify()
            self._wake_loop()

    def _wake_loop(self) -> None:
        if self._wake is None:
            return
        (loop, woken), self._wake = self._wake, None
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is reading
            loop.call_soon_threadsafe(_resolve, woken)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(eq=False)
class Job:
    """One request in the scheduler: what it asks, and once started its prompt and batch row."""

    session: ChatSession
    text: str
    keys: Sequence[str]
    ticket: Ticket
    reply: BatchedReply
    turn: BatchedTurn | None = field(default=None, repr=False)


class Scheduler:
    """The served model's running batch (see the module docstring). ``finish`` is called on the
    model thread for every request that ends, started or not."""

    def __init__(self, thread: ModelThread, max_batch: int, wait_s: float, finish: Finish) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._thread = thread
        self._finish_request = finish
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self._running: list[Job] = []
        self._cancelled: set[BatchedReply] = set()
        self._scheduled = False
        self._batch: GenerationBatch | None = None
        #: The most rows any step has run, and steps run (for /health and the tests).
        self.widest = 0
        self.steps = 0

    @property
    def running(self) -> int:
        """Requests whose replies are being generated."""
        return len(self._running)

    def submit(
        self,
        session: ChatSession,
        text: str,
        keys: Sequence[str],
        ticket: Ticket,
        count_tokens: Callable[[str], int],
    ) -> BatchedReply:
        """Queue the reply to ``text`` in ``session`` and wait until it is in the batch (call it
        from a request's own thread); raises what stopped it starting, its ticket then freed."""
        reply = BatchedReply(self, session, count_tokens)
        job = Job(session, text, keys, ticket, reply)
        with self._lock:
            self._waiting.append(job)
            kick = not self._scheduled
            self._scheduled = True
            idle = not self._running
        if kick:
            if idle and self.wait_s > 0:
                timer = threading.Timer(self.wait_s, self._kick)
                timer.daemon = True
                timer.start()
            else:
                self._kick()
        reply.wait_started()
        return reply

    def cancel(self, reply: BatchedReply) -> None:
        """End ``reply``'s row at the next tick (from any thread; twice is fine)."""
        with self._lock:
            self._cancelled.add(reply)

    # -- on the model thread --------------------------------------------------------------------

    def _kick(self) -> None:
        try:
            future = self._thread.submit(self._tick)
        except RuntimeError:  # the model thread is shut down with the server
            self._abandon()
            return
        future.add_done_callback(self._after)

    def _after(self, future: Future[None]) -> None:
        if future.cancelled():  # shut down with ticks queued: nothing will answer the requests
            self._abandon()

    def _tick(self) -> None:
        self._close_cancelled()
        self._start_waiting()
        if self._running:
            batch = self._batch
            assert batch is not None
            try:
                batch.step()
            except Exception as error:  # every row has ended with it; the next request starts afresh
                self._batch = None
                self._deliver(error)
            else:
                self.steps += 1
                self.widest = max(self.widest, len(self._running))
                self._deliver(None)
        with self._lock:
            again = bool(self._running or self._waiting)
            self._scheduled = again
        if again:
            self._kick()

    def _close_cancelled(self) -> None:
        with self._lock:
            cancelled, self._cancelled = self._cancelled, set()
        for job in self._running:
            if job.reply in cancelled and job.turn is not None:
                job.turn.row.close()

    def _start_waiting(self) -> None:
        with self._lock:
            room = self.max_batch - len(self._running)
            starting, self._waiting = self._waiting[:room], self._waiting[room:]
        if not starting:
            return
        # Every input not encoded yet, encoded together. Should that fail, each request encodes
        # its own below, so that only the one at fault fails (with the encoder's error).
        with contextlib.suppress(Exception):
            encode_together([job.session for job in starting])
        for job in starting:
            try:
                self._start(job)
            except BaseException as error:
                self._finish_request(job.session, job.keys, job.ticket)
                job.reply.started(error)
                if not isinstance(error, Exception):
                    raise
            else:
                self._running.append(job)
                job.reply.started(None)

    def _start(self, job: Job) -> None:
        if self._batch is None:
            self._batch = job.session.model.bridge.open_batch()
        job.turn = BatchedTurn.start(self._batch, job.session, job.text)
        job.reply.prompt_tokens = job.turn.prompt.tokens

    def _deliver(self, error: BaseException | None) -> None:
        """Every running row's new text to its reply; rows that ended hand their turn back."""
        for job in list(self._running):
            turn = job.turn
            assert turn is not None
            for piece in turn.drain():
                job.reply.put(piece)
            if not turn.row.finished and error is None:
                continue
            self._running.remove(job)
            turn.end()
            self._finish_request(job.session, job.keys, job.ticket)
            job.reply.end(error)

    def _abandon(self) -> None:
        """Fail every request still here: the model thread has stopped."""
        with self._lock:
            jobs, self._waiting = [*self._waiting, *self._running], []
            self._running = []
            self._scheduled = False
        stopped = RuntimeError("the server is shutting down")
        for job in jobs:
            job.ticket.release()
            job.reply.started(stopped)
            job.reply.end(stopped)
