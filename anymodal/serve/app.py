"""The FastAPI application: :func:`create_app` over one loaded model, run by uvicorn or in tests.

Endpoints: ``POST /v1/chat/completions`` (a reply, or Server-Sent Events with ``stream: true``),
``POST /v1/embeddings`` (each input's encoder embedding, ImageBind's for the first-party
modalities), ``GET /v1/models`` (the served model and its modalities' part types),
``GET /health``, and the chat page at ``/`` (:mod:`~anymodal.serve.page`). Every error is
OpenAI's JSON shape (:mod:`~anymodal.serve.errors`); bad input is a 400 and the server goes on
serving.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anymodal.contract.errors import AnymodalError
from anymodal.contract.registry import Registry
from anymodal.runtime.chat import ChatSession
from anymodal.serve import responses
from anymodal.serve.errors import ApiError, bad_request, from_anymodal, internal_error
from anymodal.serve.page import add_page
from anymodal.serve.reply import Reply
from anymodal.serve.requests import parse_chat, parse_embeddings
from anymodal.serve.service import ServeOptions, Service

log = logging.getLogger("anymodal.serve")
T = TypeVar("T")


class EventStream(StreamingResponse):
    """Server-Sent Events that stop the reply's generation however the response ends: finished,
    failed, or cut off by a client that went away."""

    def __init__(self, events: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self._events = events
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
            close = getattr(self._events, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):  # the reply is closed already; only tidying up
                    await close()


async def _stream(reply: Reply, model_id: str, include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any] | None, reason: str | None = None, **extra: Any) -> bytes:
        body = responses.chunk(
            reply.id, model_id, reply.created, delta, reason, with_usage=include_usage, **extra
        )
        return responses.sse(body)

    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            piece = await reply.astep()
            if piece is None:
                break
            if piece:
                yield chunk({"content": piece})
        reason, counts = reply.usage()
        yield chunk({}, reason)
        if include_usage:
            yield chunk(None, counts=counts)
        yield responses.sse("[DONE]")
    except AnymodalError as error:
        yield responses.sse(from_anymodal(error).body())
    except Exception as error:
        log.exception("generation failed")
        yield responses.sse(internal_error(error).body())
    finally:
        reply.close_soon()


def create_app(session: ChatSession, registry: Registry, options: ServeOptions | None = None) -> FastAPI:
    """The application serving ``session``'s model (``registry`` names the modalities' part types)."""
    options = options or ServeOptions()
    service = Service(session, registry, options)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.thread.shutdown()

    app = FastAPI(title="anymodal", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.service = service

    @app.get("/health")
    async def health() -> dict[str, Any]:
        worker = service.worker
        return {
            "status": "ok",
            "model": service.model_id,
            "queue": {"admitted": worker.admitted, "max_queue": worker.max_queue},
            "cache": {"encodings": len(service.cache), "encoded": worker.encoded},
            "kv_cache": service.kv_cache_stats(),
            "batch": service.batch_stats(),
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return responses.model_list(service.model_card())

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != service.model_id:
            raise ApiError(
                404, f"the model {model_id!r} does not exist", param="model", code="model_not_found"
            )
        return service.model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        parsed = parse_chat(await _json(request), service.types, service.model_id)
        reply = await _blocking(service.begin_chat, parsed, service.worker.admit())
        if parsed.stream:
            return EventStream(_stream(reply, service.model_id, parsed.include_usage), reply.close_soon)
        return JSONResponse(await _blocking(service.completion, reply))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        parsed = parse_embeddings(await _json(request), service.types, service.model_id)
        return JSONResponse(await _blocking(service.embeddings, parsed, service.worker.admit()))

    add_page(app)
    _add_error_handlers(app)
    app.add_middleware(Guard, api_key=options.api_key, max_bytes=int(options.max_request_mb * 2**20))
    return app


async def _blocking(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread; an error that is neither the client's nor anymodal's
    is logged with its traceback and answered as a one-line 500."""
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except (ApiError, AnymodalError):
        raise
    except Exception as error:
        log.exception("unexpected error")
        raise internal_error(error) from error


async def _json(request: Request) -> Any:
    body = await request.body()
    if not body:
        raise bad_request("the request body is empty: send a JSON object", None, "invalid_request")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise bad_request(f"the request body is not valid JSON: {error}", None, "invalid_json") from None


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return _error_response(error)

    async def anymodal_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, AnymodalError)
        return _error_response(from_anymodal(error))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        if error.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(error.detail)
        failure = ApiError(error.status_code, message, code=code, headers=dict(error.headers or {}))
        return _error_response(failure)

    async def unexpected(request: Request, error: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
        return _error_response(internal_error(error))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(AnymodalError, anymodal_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


class Guard:
    """ASGI middleware in front of every route: the API key (``/v1/...``), then the body's size,
    checked from Content-Length and again while it is read; the body is then replayed to the app."""

    def __init__(self, app: ASGIApp, api_key: str | None, max_bytes: int) -> None:
        self.app = app
        self.api_key = api_key
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        if self.api_key and scope["path"].startswith("/v1"):
            refusal = self._check_key(headers.get(b"authorization", b""))
            if refusal is not None:
                await _error_response(refusal)(scope, receive, send)
                return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope, receive, send, more=True)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send, more=more)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _check_key(self, header: bytes) -> ApiError | None:
        scheme, _, token = header.decode("latin-1").partition(" ")
        if not header:
            message = "missing API key: send the header 'Authorization: Bearer <key>'"
        elif scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), (self.api_key or "").encode()
        ):
            message = "incorrect API key: send the key this server was started with (--api-key)"
        else:
            return None
        return ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, more: bool) -> None:
        # A client that sends its whole body before reading the answer would see the connection
        # reset instead of the 413: read on (and drop) up to a few times the limit first.
        budget = 4 * self.max_bytes
        while more and budget > 0:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            budget -= len(message.get("body", b""))
            more = bool(message.get("more_body", False))
        limit = self.max_bytes / 2**20
        failure = ApiError(
            413,
            f"the request body is larger than this server's limit of {limit:g} MB (--max-request-mb)",
            code="request_too_large",
            headers={"Connection": "close"},
        )
        await _error_response(failure)(scope, receive, send)


__all__ = ["ServeOptions", "create_app"]
