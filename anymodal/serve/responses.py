"""The JSON this server answers with, in OpenAI's shapes: chat completions and their stream chunks,
model lists, embedding lists; and Server-Sent Events framing."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    id: str, model: str, created: int, text: str, finish_reason: str, counts: Mapping[str, int]
) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": dict(counts),
    }


def chunk(
    id: str,
    model: str,
    created: int,
    delta: Mapping[str, Any] | None,
    finish_reason: str | None = None,
    *,
    with_usage: bool = False,
    counts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``: one delta of the choice, or (``delta`` None) the usage chunk
    with no choices that ``stream_options.include_usage`` asks for at the end."""
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}],
    }
    if with_usage:
        body["usage"] = dict(counts) if counts is not None else None
    return body


def sse(data: Mapping[str, Any] | str) -> bytes:
    """One Server-Sent Event carrying ``data`` (JSON, or a literal such as ``[DONE]``)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def model_card(model_id: str, created: int, modalities: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The served model as OpenAI lists models, plus ``modalities``: each input modality, the
    content part types that carry it and the file kinds it takes."""
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "anymodal",
        "modalities": [dict(item) for item in modalities],
    }


def model_list(card: Mapping[str, Any]) -> dict[str, Any]:
    return {"object": "list", "data": [dict(card)]}


def embedding_list(
    model: str, vectors: Sequence[Sequence[float]], encoding_format: str, prompt_tokens: int = 0
) -> dict[str, Any]:
    """OpenAI's embedding response; ``base64`` packs each vector as little-endian float32."""
    data = []
    for index, vector in enumerate(vectors):
        if encoding_format == "base64":
            value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        else:
            value = [float(v) for v in vector]
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def now() -> int:
    return int(time.time())
