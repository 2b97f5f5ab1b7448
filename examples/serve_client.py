"""Ask an ``anymodal serve`` server about the sample file of every modality it serves, with the
official ``openai`` client.

Start a server (``anymodal serve``: the built-in demo model on http://127.0.0.1:8000), then:

    python examples/serve_client.py [--base-url http://127.0.0.1:8000/v1] [--api-key KEY] [--stream]

It reads the served modalities from ``GET /v1/models``, sends each sample file in this folder as a
data: URL in its modality's content part (``image_url`` and ``input_audio`` as OpenAI defines them,
``<name>_url`` for the rest), asks the sample's question and prints the reply; then it asks a
follow-up question about the first image without sending it again (the conversation's earlier
message carries it), and prints the ImageBind embeddings' cosine similarity of two inputs.
"""

from __future__ import annotations

import argparse
import base64
import math
from pathlib import Path
from typing import Any

from openai import OpenAI

HERE = Path(__file__).resolve().parent

#: modality -> (sample file, its media type, a question about it)
SAMPLES = {
    "image": ("red_circle.png", "image/png", "What shape is this?"),
    "video": ("green_triangle_moving_right.mp4", "video/mp4", "Which way does the shape move?"),
    "audio": ("low_rising_tone.wav", "audio/wav", "How does the tone change over time?"),
    "depth": ("near_object_depth.png", "image/png", "Is the object close to the camera?"),
    "thermal": ("hot_object_thermal.png", "image/png", "Is the object hot or cold?"),
    "imu": ("running_imu.npy", "application/x-npy", "What is the person doing?"),
}


def media_part(modality: str, path: Path, media_type: str) -> dict[str, Any]:
    """The content part that carries ``path`` as ``modality``."""
    data = base64.b64encode(path.read_bytes()).decode()
    if modality == "audio":  # OpenAI's own part for sound: base64 and a format, no URL
        return {"type": "input_audio", "input_audio": {"data": data, "format": path.suffix[1:]}}
    kind = "image_url" if modality == "image" else f"{modality}_url"
    return {"type": kind, kind: {"url": f"data:{media_type};base64,{data}"}}


def ask(client: OpenAI, model: str, messages: Any, stream: bool) -> str:
    if not stream:
        reply = client.chat.completions.create(model=model, messages=messages)
        return reply.choices[0].message.content or ""
    chunks = client.chat.completions.create(model=model, messages=messages, stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", default="unused", help="the server's --api-key, if it has one")
    parser.add_argument("--stream", action="store_true", help="stream the replies")
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    [card] = client.models.list().data
    served = [entry["name"] for entry in (card.model_extra or {}).get("modalities", [])]
    print(f"{card.id} serves: {', '.join(served)}")
    parts, replies = {}, {}
    for modality in served:
        if modality not in SAMPLES:
            print(f"{modality}: no sample file here to send")
            continue
        name, media_type, question = SAMPLES[modality]
        parts[modality] = media_part(modality, HERE / name, media_type)
        message = {"role": "user", "content": [parts[modality], {"type": "text", "text": question}]}
        replies[modality] = ask(client, card.id, [message], args.stream)
        print(f"{modality} ({name}) {question} -> {replies[modality]}")

    if "image" in parts:  # a follow-up: the picture is in the conversation already
        first_question = SAMPLES["image"][2]
        history: list[dict[str, Any]] = [
            {"role": "user", "content": [parts["image"], {"type": "text", "text": first_question}]},
            {"role": "assistant", "content": replies["image"]},
            {"role": "user", "content": "What colour is the shape?"},
        ]
        print(f"image, follow-up: What colour is the shape? -> {ask(client, card.id, history, args.stream)}")

    if "image" in parts and "depth" in parts:
        vectors = client.embeddings.create(model=card.id, input=[parts["image"], parts["depth"]])  # type: ignore[arg-type]
        similarity = cosine(vectors.data[0].embedding, vectors.data[1].embedding)
        size = len(vectors.data[0].embedding)
        print(f"embeddings: {size} numbers each; image vs depth cosine {similarity:.3f}")


if __name__ == "__main__":
    main()
