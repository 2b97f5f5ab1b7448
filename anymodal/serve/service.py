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
from anymodal.serve.requests import (
    ChatRequest,
    EmbeddingRequest,
    MediaPart,
    part_types,
    prepare_messages,
    prepare_part,
)
from anymodal.serve.worker import ModelThread, Ticket, Worker


@dataclass(frozen=True)
class ServeOptions:
    """How the server answers. ``max_request_mb`` bounds a request body and a fetched URL;
    ``max_queue`` is how many requests may wait while one runs (more get a 429); ``cache_size``
    is how many projected inputs are kept to be reused by later requests."""

    model_id: str = "anymodal"
    api_key: str | None = None
    allow_paths: tuple[str | Path, ...] = ()
    allow_remote: bool = False
    max_request_mb: float = 64.0
    max_queue: int = 8
    cache_size: int = 256


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
        self.worker = Worker(options.max_queue, self.cache, options.cache_size)
        self.thread = ModelThread()
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
            ticket.run()
            return self.thread.call(self._start, messages, request, ticket)
        except BaseException:
            ticket.release()
            raise

    def completion(self, reply: Reply) -> dict[str, Any]:
        """The whole reply as a ``chat.completion`` (blocks until it is generated)."""
        text, reason, counts = self.thread.call(reply.finish)
        return responses.completion(reply.id, self.model_id, reply.created, text, reason, counts)

    def _start(self, messages: Sequence[ChatMessage], request: ChatRequest, ticket: Ticket) -> Reply:
        session, text = self._session(messages, request)
        keys = [item.key for message in messages for item in message.inputs]
        try:
            prompt_tokens = session.prompt_tokens(text)
            pieces = session.ask(text)
        except BaseException:
            self._finish(session, keys, ticket)
            raise
        return Reply(self, ticket, session, keys, pieces, prompt_tokens)

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


class Reply:
    """A reply being generated: its pieces, one at a time, and the model given back on close."""

    def __init__(
        self,
        service: Service,
        ticket: Ticket,
        session: ChatSession,
        keys: Sequence[str],
        pieces: Iterator[str],
        prompt_tokens: int,
    ) -> None:
        self.service = service
        self.ticket = ticket
        self.session = session
        self.keys = keys
        self.pieces = pieces
        self.prompt_tokens = prompt_tokens
        self.text = ""
        self.id = responses.completion_id()
        self.created = responses.now()
        self._step = threading.Lock()
        self._closed = False

    def step(self) -> str | None:
        """The next piece of text, or None at the end (blocks: call it from a worker thread)."""
        return self.service.thread.call(self.next_piece)

    def finish(self) -> tuple[str, str, dict[str, int]]:
        """The whole reply, its finish reason and usage, the model given back (on the model thread)."""
        try:
            text = self.all()
        finally:
            self.close()
        return (text, *self.usage())

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

    def all(self) -> str:
        while self.next_piece() is not None:
            pass
        return self.text

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

    def completion_tokens(self) -> int:
        return len(self.service.model.bridge.tokenize(self.text)) if self.text else 0

    def finish_reason(self, completion_tokens: int) -> str:
        return "length" if completion_tokens >= self.session.generation.max_new_tokens else "stop"

    def usage(self) -> tuple[str, dict[str, int]]:
        tokens = self.completion_tokens()
        return self.finish_reason(tokens), responses.usage(self.prompt_tokens, tokens)


__all__ = ["Reply", "ServeOptions", "Service"]
