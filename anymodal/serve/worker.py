"""Admission of requests and the model's one thread: a bounded number run, a bounded number wait
their turn, the rest get a 429.

A request is admitted (:meth:`Worker.admit`) before its media is read, so the bound also caps the
memory that waiting requests hold. A request that runs alone takes the model (:meth:`Ticket.run`)
to encode and generate; one decoded in the running batch (:mod:`~anymodal.serve.scheduler`) holds
one of its ``slots`` instead. Either gives its ticket back when its reply ends, fails, or its
client goes away (:meth:`Ticket.release`, which may be called more than once). The encodings
cached for the model are trimmed to the newest after each request, on the model thread.
Everything that runs torch runs on one :class:`ModelThread`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from anymodal.serve.errors import ApiError

T = TypeVar("T")

#: Seconds a client turned away is told to wait (``Retry-After``).
RETRY_AFTER_S = 1


class Worker:
    """Admission (at most ``max_queue`` waiting besides the ``slots`` running: 1, or the most
    replies decoded together) and the model's lock (for requests that run alone)."""

    def __init__(
        self,
        max_queue: int,
        cache: OrderedDict[str, Any] | None = None,
        cache_size: int = 256,
        slots: int = 1,
    ):
        if max_queue < 0:
            raise ValueError(f"max_queue must be 0 or more, not {max_queue}")
        if slots < 1:
            raise ValueError(f"slots must be 1 or more, not {slots}")
        self.max_queue = max_queue
        self.slots = slots
        self.cache = cache
        self.cache_size = cache_size
        #: Inputs run through an encoder since the server started (the rest came from the cache).
        self.encoded = 0
        self._admitted = 0
        self._count = threading.Lock()
        self._model = threading.Lock()

    @property
    def admitted(self) -> int:
        """Requests admitted and not finished: those running and those waiting."""
        return self._admitted

    def admit(self) -> Ticket:
        """A ticket for one request, or a 429 when ``max_queue`` requests already wait."""
        with self._count:
            if self._admitted >= self.max_queue + self.slots:
                raise ApiError(
                    429,
                    f"the server is busy: {self._admitted - self.slots} request(s) are waiting and the queue "
                    f"holds {self.max_queue}; retry after {RETRY_AFTER_S} s",
                    code="queue_full",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            self._admitted += 1
        return Ticket(self)

    def trim_cache(self, used: Iterable[str]) -> None:
        """Mark ``used`` keys as the newest and drop the oldest beyond ``cache_size`` (hold the model)."""
        cache = self.cache
        if cache is None:
            return
        for key in used:
            if key in cache:
                cache.move_to_end(key)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)


class Ticket:
    """One admitted request: waits for the model with :meth:`run`, frees all with :meth:`release`."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._running = False
        self._released = False
        self._guard = threading.Lock()

    def run(self) -> None:
        """Block until the model is this request's (call it from a worker thread)."""
        self.worker._model.acquire()
        with self._guard:
            self._running = True
            if self._released:  # released while waiting: hand the model straight back
                self._running = False
                self.worker._model.release()

    def release(self) -> None:
        with self._guard:
            if self._released:
                return
            self._released = True
            if self._running:
                self._running = False
                self.worker._model.release()
        with self.worker._count:
            self.worker._admitted -= 1


class ModelThread:
    """The one thread every call that runs torch goes to (decoding media, encoding, each step of
    generation): torch's CPU threads are kept per calling thread, and on a few cores two callers'
    threads slow each other several times over (a reply took 10x longer when its prompt was
    encoded in one thread and generated in another)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anymodal-model")

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the model thread and wait for it (from any other thread)."""
        return self._executor.submit(function, *args).result()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``function(*args)`` on the model thread without waiting."""
        return self._executor.submit(function, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
