"""The served model without HTTP: :class:`Service` parses nothing and speaks no protocol; it prepares
a parsed request's media, waits its turn for the model, and runs it, one request at a time (the
chat reply as a :class:`Reply` to step through or finish). The FastAPI app
(:mod:`~anymodal.serve.app`) and ``anymodal batch`` (:mod:`~anymodal.serve.batch`) both drive it.
Importing it imports torch, not FastAPI.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from anymodal.contract.errors import AnymodalError
from anymodal.contract.registry import Registry
from anymodal.runtime.chat import ChatMessage, ChatSession
from anymodal.runtime.model import PreparedInput
from anymodal.serve import responses
from anymodal.serve.errors import bad_request, from_anymodal
from anymodal.serve.media import MediaPolicy, write_part
from anymodal.serve.reply import Reply
from anymodal.serve.requests import (
    ChatRequest,
    EmbeddingRequest,
    MediaPart,
    part_types,
    prepare_messages,
    prepare_part,
)
from anymodal.serve.scheduler import Scheduler
from anymodal.serve.worker import ModelThread, Ticket, Worker


@dataclass(frozen=True)
class ServeOptions:
    """How the server answers. ``max_request_mb`` bounds a request body and a fetched URL;
    ``max_queue`` is how many requests may wait while those running run (more get a 429);
    ``cache_size`` is how many projected inputs are kept to be reused by later requests;
    ``max_batch`` is how many replies are decoded together (``generation.max_batch``; 1, or a
    bridge that cannot batch, runs one request at a time), ``batch_wait_ms`` how long an idle
    server waits for more requests to start a batch with."""

    model_id: str = "anymodal"
    api_key: str | None = None
    allow_paths: tuple[str | Path, ...] = ()
    allow_remote: bool = False
    max_request_mb: float = 64.0
    max_queue: int = 8
    cache_size: int = 256
    max_batch: int = 1
    batch_wait_ms: float = 5.0


class Service:
    """The loaded model behind the endpoints: parses, prepares, and runs requests one at a time."""

    def __init__(self, session: ChatSession, registry: Registry, options: ServeOptions) -> None:
        self.session = session
        self.model = session.model
        self.options = options
        self.model_id = options.model_id
        self.types = part_types(registry)
        self.policy = MediaPolicy.create(options.allow_paths, options.allow_remote, options.max_request_mb)
        self.cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        slots = options.max_batch if self.model.bridge.supports_batching else 1
        self.worker = Worker(options.max_queue, self.cache, options.cache_size, slots=slots)
        self.thread = ModelThread()
        self.scheduler = Scheduler(self.thread, options.max_batch, options.batch_wait_ms / 1000, self._finish)
        self.created = responses.now()

    # -- chat -----------------------------------------------------------------------------------

    def begin_chat(self, request: ChatRequest, ticket: Ticket) -> Reply:
        """Prepare the request's media, wait for the model, and start the reply, which gives the
        ticket back when it closes; on failure the ticket is given back here (call it from a
        worker thread: it blocks)."""
        try:
            folder = Path(tempfile.mkdtemp(prefix="anymodal-serve-"))
            try:
                messages = self.thread.call(prepare_messages, request, self.model, self.policy, folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            session, text = self._session(messages, request)
            keys = [item.key for message in messages for item in message.inputs]
            if self.batching:
                return self.scheduler.submit(session, text, keys, ticket, self._count_tokens)
            ticket.run()
            return self.thread.call(self._start, session, text, keys, ticket)
        except BaseException:
            ticket.release()  # a second release, after the reply's own, does nothing
            raise

    @property
    def batching(self) -> bool:
        """Whether chat replies are decoded together (``max_batch`` above 1, and a bridge that can)."""
        return self.worker.slots > 1 and self.model.bridge.supports_batching

    def completion(self, reply: Reply) -> dict[str, Any]:
        """The whole reply as a ``chat.completion`` (blocks until it is generated)."""
        text, reason, counts = reply.complete()
        return responses.completion(reply.id, self.model_id, reply.created, text, reason, counts)

    def _start(self, session: ChatSession, text: str, keys: Sequence[str], ticket: Ticket) -> SoloReply:
        try:
            prompt = session.begin_turn(text)
            pieces = session.reply(prompt)
        except BaseException:
            self._finish(session, keys, ticket)
            raise
        return SoloReply(self, ticket, session, keys, pieces, prompt.tokens)

    def _count_tokens(self, text: str) -> int:
        return len(self.model.bridge.tokenize(text))

    def _session(self, messages: Sequence[ChatMessage], request: ChatRequest) -> tuple[ChatSession, str]:
        base = self.session.generation
        changes: dict[str, Any] = {}
        if request.max_tokens is not None:
            changes["max_new_tokens"] = request.max_tokens
        if request.temperature is not None:
            changes["temperature"] = request.temperature
            changes["do_sample"] = request.temperature > 0
        if request.top_p is not None:
            changes["top_p"] = request.top_p
        if request.seed is not None:
            changes["seed"] = request.seed
        if request.stop:
            changes["stop"] = tuple(dict.fromkeys(base.stop + request.stop))
        generation = dataclasses.replace(base, **changes)
        return self.session.for_messages(messages, generation, cache=self.cache)

    def _finish(self, session: ChatSession, keys: Sequence[str], ticket: Ticket) -> None:
        self.worker.encoded += session.encoded_count
        self.worker.trim_cache(keys)
        ticket.release()

    def kv_cache_stats(self) -> dict[str, int] | None:
        """The LLM's kept KV caches (``generation.kv_cache_mb``): entries, bytes, prompts that
        continued one and those that ran from the start; None when reuse is off."""
        store = self.session.prefixes
        if store is None:
            return None
        return {
            "entries": len(store.entries),
            "bytes": store.nbytes,
            "max_bytes": store.max_bytes,
            "hits": store.hits,
            "misses": store.misses,
            "reused_positions": store.reused_positions,
        }

    def batch_stats(self) -> dict[str, int] | None:
        """The running batch (``generation.max_batch``): its size limit, the replies in it now, the
        most one step has decoded together, and the steps run; None when replies run one at a time."""
        if not self.batching:
            return None
        scheduler = self.scheduler
        return {
            "max_batch": scheduler.max_batch,
            "running": scheduler.running,
            "widest": scheduler.widest,
            "steps": scheduler.steps,
        }

    # -- embeddings -----------------------------------------------------------------------------

    def embeddings(self, request: EmbeddingRequest, ticket: Ticket) -> dict[str, Any]:
        """The embedding list of OpenAI's shape for ``request``; the ticket is given back at the end
        (blocks: call it from a worker thread)."""
        try:
            vectors = self.embed(request, ticket)
        finally:
            ticket.release()
        return responses.embedding_list(self.model_id, vectors, request.encoding_format)

    def embed(self, request: EmbeddingRequest, ticket: Ticket) -> list[list[float]]:
        """Each input's pooled encoder output, from the served model's own encoders (in a thread)."""
        texts = [i for i, item in enumerate(request.inputs) if isinstance(item, str)]
        if texts and "text" not in self.model.specs:
            accepts = ", ".join(sorted(self.model.specs)) or "none"
            raise bad_request(
                "text embeddings are not available for this model: it has no text modality (anymodal "
                "does not ship ImageBind's text tokenizer yet); send media parts such as "
                f"{{'type': 'image_url', 'image_url': {{'url': 'data:...'}}}} (its modalities: {accepts})",
                f"input[{texts[0]}]" if len(request.inputs) > 1 else "input",
                "text_embeddings_unavailable",
            )
        folder = Path(tempfile.mkdtemp(prefix="anymodal-serve-"))
        try:
            prepared = self.thread.call(self._embedding_inputs, request, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        ticket.run()
        vectors = self.thread.call(self._pooled, prepared)
        if request.dimensions is not None and vectors and request.dimensions != len(vectors[0]):
            raise bad_request(
                f"dimensions must be {len(vectors[0])} for this model's embeddings (or left out)",
                "dimensions",
                "invalid_request",
            )
        return vectors

    def _embedding_inputs(self, request: EmbeddingRequest, folder: Path) -> list[PreparedInput]:
        return [self._embedding_input(item, i, folder) for i, item in enumerate(request.inputs)]

    def _pooled(self, prepared: Sequence[PreparedInput]) -> list[list[float]]:
        with torch.no_grad():
            outputs = self.model.encode_features(prepared)
        return [output.pooled.float().cpu().tolist() for output in outputs]

    def _embedding_input(self, item: str | MediaPart, index: int, folder: Path) -> PreparedInput:
        if isinstance(item, MediaPart):
            return prepare_part(item, self.model, self.policy, folder)
        spec = self.model.specs["text"]
        param = f"input[{index}]"
        path = write_part(folder, param, spec.file_kinds[0] if spec.file_kinds else ".txt", item.encode())
        try:
            prepared = self.model.prepare("text", path)
            _ = prepared.key
        except AnymodalError as error:
            raise from_anymodal(error, param, hide=[str(folder)]) from None
        return prepared

    # -- models ---------------------------------------------------------------------------------

    def model_card(self) -> dict[str, Any]:
        modalities = [
            {
                "name": name,
                "part_types": [kind for kind, modality in self.types.items() if modality == name],
                "file_kinds": list(spec.file_kinds),
                "placeholder": spec.placeholder,
                "tokens_per_input": self.model.tokens_per_input(name),
            }
            for name, spec in sorted(self.model.specs.items())
        ]
        return responses.model_card(self.model_id, self.created, modalities)


class SoloReply(Reply):
    """A reply generated alone, holding the model: each piece is one step on the model thread."""

    def __init__(
        self,
        service: Service,
        ticket: Ticket,
        session: ChatSession,
        keys: Sequence[str],
        pieces: Iterator[str],
        prompt_tokens: int,
    ) -> None:
        super().__init__(session, prompt_tokens, service._count_tokens)
        self.service = service
        self.ticket = ticket
        self.keys = keys
        self.pieces = pieces
        self._step = threading.Lock()
        self._closed = False

    def step(self) -> str | None:
        return self.service.thread.call(self.next_piece)

    def complete(self) -> tuple[str, str, dict[str, int]]:
        return self.service.thread.call(self._complete)

    def _complete(self) -> tuple[str, str, dict[str, int]]:
        """The whole reply, the model given back (on the model thread)."""
        try:
            while self.next_piece() is not None:
                pass
        finally:
            self.close()
        return (self.text, *self.usage())

    def close_soon(self) -> None:
        """:meth:`close` on the model thread, after the step it may be running (does not wait)."""
        try:
            self.service.thread.submit(self.close)
        except RuntimeError:  # the thread is shut down with the server: nothing runs there any more
            self.close()

    def next_piece(self) -> str | None:
        """The next piece of text, or None at the end (on the model thread)."""
        with self._step:
            if self._closed:
                return None
            piece = next(self.pieces, None)
            if piece is not None:
                self.text += piece
            return piece

    def close(self) -> None:
        """Stop generating (the bridge's loop ends with its generator) and free the model; twice is fine."""
        with self._step:
            if self._closed:
                return
            self._closed = True
            close = getattr(self.pieces, "close", None)
            try:
                if close is not None:
                    close()
            finally:
                self.service._finish(self.session, self.keys, self.ticket)


__all__ = ["ServeOptions", "Service", "SoloReply"]
