"""Errors in OpenAI's JSON shape: ``{"error": {"message", "type", "param", "code"}}``.

Every refusal of the server is an :class:`ApiError` with its HTTP status; anymodal's own errors map
by type (:func:`from_anymodal`): what the client sent wrong (``InputError``, ``UsageError``,
``ConfigError``) is a 400, anything else the server's fault, a 500 with the one-line message and
no traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from anymodal.contract.errors import AnymodalError, InputError, UsageError

#: OpenAI's ``type`` for each status this server answers with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class ApiError(Exception):
    """A request refused with ``status``; ``param`` names the offending field (``messages[0].content[1]``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    @property
    def type(self) -> str:
        return ERROR_TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def internal_error(error: Exception) -> ApiError:
    """The 500 for a failure that is neither the client's nor one of anymodal's own: one line, the
    traceback left to the server's log."""
    return ApiError(500, f"internal error: {type(error).__name__}: {error}", code="internal_error")


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def from_anymodal(error: AnymodalError, param: str | None = None, hide: Sequence[str] = ()) -> ApiError:
    """The API error for one of anymodal's own: 400 for the client's input or request, else 500.
    Each of ``hide`` (the server's temporary folders) is cut from the message, so a decoded part
    is named by its place in the request (``messages[0].content[1].png``), not the server's path."""
    message = str(error)
    for prefix in hide:
        message = message.replace(prefix.rstrip("/") + "/", "")
    if isinstance(error, InputError):
        return ApiError(400, message, param=param, code="invalid_input")
    if isinstance(error, UsageError):
        return ApiError(400, message, param=param, code="invalid_request")
    return ApiError(500, message, param=param, code="model_error")
