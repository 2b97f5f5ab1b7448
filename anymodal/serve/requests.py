"""Request bodies read and checked: chat completions and embeddings, in OpenAI's shapes.

A user message's content is a string or a list of parts: ``{"type": "text", "text": ...}``,
OpenAI's ``image_url`` (``{"url": ...}``) and ``input_audio`` (``{"data": base64, "format":
"wav"}``), and for every registered modality ``<name>_url`` (``{"type": "depth_url", "depth_url":
{"url": "data:image/png;base64,..."}}``): :func:`part_types` derives them from the registry, so a
third party's modality has its part as soon as its plugin is installed.

Each part's media becomes a prepared input of the model (:func:`prepare_messages`). A message's
inputs go at its start, as ``anymodal chat`` places them, when they all come before its text or
its text holds their placeholders (``<image>``: the client placed them); when text comes first,
each input's placeholder is put where its part is, so the order holds. Text parts are joined by
newlines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.contract.errors import AnymodalError
from anymodal.contract.registry import Registry
from anymodal.contract.specs import Role
from anymodal.serve.errors import ApiError, bad_request, from_anymodal
from anymodal.serve.media import MediaPolicy, decode_base64, media_file, write_part

if TYPE_CHECKING:
    from anymodal.runtime.chat import ChatMessage
    from anymodal.runtime.model import AnyModalModel, PreparedInput

#: Parameters of ``POST /v1/chat/completions`` this server takes; any other is refused by name.
CHAT_PARAMETERS = (
    "messages",
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "n",
    "stream",
    "stream_options",
    "user",
)
EMBEDDING_PARAMETERS = ("input", "model", "encoding_format", "dimensions", "user")
ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP = 4

#: OpenAI's own part types and the modality each carries.
OPENAI_PARTS = {"image_url": "image", "input_audio": "audio"}


def part_types(registry: Registry) -> dict[str, str]:
    """Every media part type a request may use, and its modality: ``<name>_url`` for each
    registered modality, and OpenAI's ``input_audio`` when an audio modality is registered."""
    types = {f"{name}_url": name for name in sorted(registry.modalities)}
    for type_name, modality in OPENAI_PARTS.items():
        if modality in registry.modalities:
            types.setdefault(type_name, modality)
    return types


@dataclass(frozen=True)
class MediaPart:
    """One part's media, not read yet: a URL (``url``) or ``input_audio``'s base64 and format."""

    modality: str
    param: str
    url: str | None = None
    data: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class RequestMessage:
    role: Role
    pieces: tuple[str | MediaPart, ...]

    @property
    def media(self) -> list[MediaPart]:
        return [piece for piece in self.pieces if isinstance(piece, MediaPart)]


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[RequestMessage, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False


@dataclass(frozen=True)
class EmbeddingRequest:
    inputs: tuple[str | MediaPart, ...]
    encoding_format: str = "float"
    dimensions: int | None = None


def parse_chat(body: Any, types: Mapping[str, str], model_id: str) -> ChatRequest:
    """Check a chat completion request and read its messages; every problem is a 400 naming its field."""
    body = _object(body, "the request body")
    _check_parameters(body, CHAT_PARAMETERS)
    _check_model(body, model_id)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list of messages", "messages", "invalid_request")
    parsed = tuple(_message(item, index, types) for index, item in enumerate(messages))
    if parsed[-1].role != "user":
        raise bad_request(
            f"the last message must be the user's, not {parsed[-1].role!r}",
            f"messages[{len(parsed) - 1}].role",
            "invalid_request",
        )
    n = _integer(body, "n", minimum=1)
    if n is not None and n != 1:
        raise bad_request("n must be 1: this server makes one choice per request", "n", "invalid_request")
    max_tokens = _integer(body, "max_completion_tokens", minimum=1)
    other = _integer(body, "max_tokens", minimum=1)
    if max_tokens is not None and other is not None and max_tokens != other:
        raise bad_request(
            "max_tokens and max_completion_tokens disagree; send one", "max_tokens", "invalid_request"
        )
    stream = _optional(body, "stream", bool, "a boolean")
    options = _optional(body, "stream_options", dict, "an object") or {}
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise bad_request(
            "stream_options.include_usage must be a boolean",
            "stream_options.include_usage",
            "invalid_request",
        )
    _optional(body, "user", str, "a string")
    return ChatRequest(
        messages=parsed,
        max_tokens=max_tokens if max_tokens is not None else other,
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0, open_low=True),
        seed=_integer(body, "seed"),
        stop=_stop(body.get("stop")),
        stream=bool(stream),
        include_usage=include_usage,
    )


def parse_embeddings(body: Any, types: Mapping[str, str], model_id: str) -> EmbeddingRequest:
    """Check an embeddings request: ``input`` a string, or a list of strings and media parts."""
    body = _object(body, "the request body")
    _check_parameters(body, EMBEDDING_PARAMETERS)
    _check_model(body, model_id)
    given = body.get("input")
    items = [given] if isinstance(given, (str, dict)) else given
    if not isinstance(items, list) or not items:
        raise bad_request(
            "'input' must be a string or a non-empty list of strings and media parts",
            "input",
            "invalid_request",
        )
    inputs: list[str | MediaPart] = []
    for index, item in enumerate(items):
        param = f"input[{index}]" if isinstance(given, list) else "input"
        if isinstance(item, str):
            if not item.strip():
                raise bad_request("an input text is empty", param, "invalid_input")
            inputs.append(item)
        elif isinstance(item, dict):
            inputs.append(_part(item, param, types, text_ok=True))
        elif isinstance(item, (int, list)):
            raise bad_request(
                "token arrays are not supported: send text or media parts", param, "invalid_input"
            )
        else:
            raise bad_request("each input must be a string or a media part", param, "invalid_input")
    encoding = _optional(body, "encoding_format", str, "a string") or "float"
    if encoding not in ("float", "base64"):
        raise bad_request(
            f"encoding_format must be 'float' or 'base64', not {encoding!r}",
            "encoding_format",
            "invalid_request",
        )
    _optional(body, "user", str, "a string")
    return EmbeddingRequest(tuple(inputs), encoding, _integer(body, "dimensions", minimum=1))


def prepare_messages(
    request: ChatRequest, model: AnyModalModel, policy: MediaPolicy, folder: Path
) -> list[ChatMessage]:
    """The request's messages with every part's media checked, decoded and preprocessed by the
    model, as the runtime's :class:`~anymodal.runtime.chat.ChatMessage`."""
    from anymodal.runtime.chat import ChatMessage

    out = []
    for message in request.messages:
        prepared = [prepare_part(part, model, policy, folder) for part in message.media]
        out.append(ChatMessage(message.role, _text(message, model), tuple(prepared)))
    return out


def prepare_part(part: MediaPart, model: AnyModalModel, policy: MediaPolicy, folder: Path) -> PreparedInput:
    """One part's media made a file and prepared by ``model``; its errors are 400s naming the part."""
    try:
        spec = model.check_modality(part.modality)
        name = part.param.replace("/", "_")
        if part.url is not None:
            path = media_file(part.url, spec, folder, name, policy, part.param)
        else:
            data = decode_base64(part.data or "", part.param)
            path = write_part(folder, name, f".{part.format}", data)
        prepared = model.prepare(part.modality, path)
        _ = prepared.key  # the content's hash, now, while the file is there
    except AnymodalError as error:
        raise from_anymodal(error, part.param, hide=[str(folder)]) from None
    return prepared


def _text(message: RequestMessage, model: AnyModalModel) -> str:
    pieces = message.pieces
    texts = [piece for piece in pieces if isinstance(piece, str)]
    placeholders = {model.specs[part.modality].placeholder for part in message.media}
    is_media = [isinstance(piece, MediaPart) for piece in pieces]
    placed = any(mark in text for mark in placeholders for text in texts)  # the client placed them
    if placed or is_media == sorted(is_media, reverse=True):  # or every input comes before any text
        return "\n".join(texts)
    return "\n".join(
        piece if isinstance(piece, str) else model.specs[piece.modality].placeholder for piece in pieces
    )


def _message(item: Any, index: int, types: Mapping[str, str]) -> RequestMessage:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise bad_request("each message must be an object with a role and content", where, "invalid_request")
    role = item.get("role")
    if role not in ROLES:
        raise bad_request(
            f"unsupported role {role!r} (this server takes system, developer, user and assistant messages)",
            f"{where}.role",
            "invalid_request",
        )
    for unsupported in ("tool_calls", "function_call", "audio"):
        if item.get(unsupported) is not None:
            raise bad_request(
                f"{unsupported} in messages are not supported", f"{where}.{unsupported}", "invalid_request"
            )
    content = item.get("content")
    if content is None and role == "assistant":
        content = ""
    if isinstance(content, str):
        return RequestMessage(ROLES[role], (content,))
    if not isinstance(content, list):
        raise bad_request(
            "content must be a string or a list of parts", f"{where}.content", "invalid_request"
        )
    pieces: list[str | MediaPart] = []
    for number, part in enumerate(content):
        param = f"{where}.content[{number}]"
        parsed = _part(part, param, types, text_ok=True)
        if isinstance(parsed, MediaPart) and ROLES[role] != "user":
            raise bad_request(
                f"only user messages may carry media; this is a {role} message", param, "invalid_request"
            )
        pieces.append(parsed)
    return RequestMessage(ROLES[role], tuple(pieces))


def _part(part: Any, param: str, types: Mapping[str, str], *, text_ok: bool) -> str | MediaPart:
    if not isinstance(part, dict):
        raise bad_request("each content part must be an object with a type", param, "invalid_request")
    kind = part.get("type")
    if text_ok and kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise bad_request(f"a {kind} part needs a string '{kind}'", f"{param}.{kind}", "invalid_request")
        return text
    if not isinstance(kind, str) or kind not in types:
        known = ", ".join(["text", *types])
        raise bad_request(
            f"unknown content part type {kind!r} (this server takes: {known})",
            f"{param}.type",
            "invalid_part",
        )
    value = part.get(kind)
    if kind == "input_audio":
        if not isinstance(value, dict) or not isinstance(value.get("data"), str):
            raise bad_request(
                "an input_audio part needs {'data': base64, 'format': 'wav'|'mp3'|...}",
                f"{param}.input_audio",
                "invalid_part",
            )
        audio_format = str(value.get("format") or "wav").lower()
        if not audio_format.isalnum() or len(audio_format) > 8:
            raise bad_request(
                f"unsupported audio format {audio_format!r}", f"{param}.input_audio.format", "invalid_part"
            )
        return MediaPart(types[kind], param, data=value["data"], format=audio_format)
    url = value.get("url") if isinstance(value, dict) else value if isinstance(value, str) else None
    if not isinstance(url, str):
        raise bad_request(f"a {kind} part needs {{'url': ...}}", f"{param}.{kind}", "invalid_part")
    return MediaPart(types[kind], param, url=url)


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"{what} must be a JSON object", None, "invalid_request")
    return body


def _check_parameters(body: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = [name for name in body if name not in allowed]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise bad_request(
            f"unsupported parameter{'s' if len(unknown) > 1 else ''}: {names} (this server takes: "
            f"{', '.join(allowed)})",
            unknown[0],
            "unsupported_parameter",
        )


def _check_model(body: Mapping[str, Any], model_id: str) -> None:
    model = body.get("model")
    if model is None:
        return
    if model != model_id:
        raise ApiError(
            404,
            f"the model {model!r} does not exist: this server serves {model_id!r}",
            param="model",
            code="model_not_found",
        )


def _optional(body: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise bad_request(f"{name} must be {what}", name, "invalid_request")
    return value


def _integer(body: Mapping[str, Any], name: str, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer", name, "invalid_request")
    if minimum is not None and value < minimum:
        raise bad_request(f"{name} must be at least {minimum}", name, "invalid_request")
    return value


def _number(
    body: Mapping[str, Any], name: str, low: float, high: float, open_low: bool = False
) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_request(f"{name} must be a number", name, "invalid_request")
    if value > high or value < low or (open_low and value == low):
        bounds = f"{'above' if open_low else 'at least'} {low:g} and at most {high:g}"
        raise bad_request(f"{name} must be {bounds}", name, "invalid_request")
    return float(value)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or not all(isinstance(text, str) and text for text in stops)
        or len(stops) > MAX_STOP
    ):
        raise bad_request(
            f"stop must be a non-empty string or a list of at most {MAX_STOP} of them",
            "stop",
            "invalid_request",
        )
    return tuple(stops)
