"""`anymodal serve` under load: concurrent clients on loopback, against the same questions asked
in-process one after another.

``anymodal serve`` runs in its own process on the built-in demo model (``--max-queue`` as given).
``--clients`` asyncio clients (httpx, one connection each) then send ``--requests`` chat requests
in all, bounded by ``--seconds``: the sample file of each modality as a data: URL part and its
question, every other request streamed (its time to first token is the time to the first chunk
with text). A client turned away with 429 waits ``Retry-After`` and sends the same request
again, so every request is answered or, past the time bound, counted as refused; any status but
200 and 429, or a request with neither, is an error. The server's resident memory is read from
``/proc`` after a warm-up round and at the end.

The reference is the straightforward way to the same answers: one process, the model loaded once
(``ChatSession``, what ``anymodal chat`` runs, keeping its cache of encodings as the server
keeps its own), the same questions asked one after another from files on disk. The ratio is
the server's requests per second over the reference's.

A second, short phase with ``--max-queue 2`` shows the refusals: most of the clients get 429s,
which are counted, and none is lost.

``--batching`` instead compares the server decoding concurrent requests together (as shipped,
``generation.max_batch=16``) with the same server one request at a time
(``generation.max_batch=1``), ``--clients`` (16) clients each, in one run; every answer to a body
must be the same in both (greedy), and the ratio is their requests per second.

    python benchmarks/serving.py [--clients 32] [--requests 320] [--seconds 180]
    python benchmarks/serving.py --batching [--clients 16] [--requests 320]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: (modality, part type, media type, sample file, question, a word the demo model's answer holds).
QUESTIONS = [
    ("image", "image_url", "image/png", "red_circle.png", "What shape is this?", "circle"),
    ("audio", "input_audio", "audio/wav", "low_rising_tone.wav", "How does the tone change?", "rises"),
    (
        "video",
        "video_url",
        "video/mp4",
        "green_triangle_moving_right.mp4",
        "Which way does it move?",
        "right",
    ),
    ("depth", "depth_url", "image/png", "near_object_depth.png", "Is the object close?", "near"),
    ("thermal", "thermal_url", "image/png", "hot_object_thermal.png", "Is the object hot or cold?", "hot"),
    ("imu", "imu_url", "application/x-npy", "running_imu.npy", "What is the person doing?", "running"),
]


def part(part_type: str, media_type: str, data: bytes) -> dict[str, Any]:
    encoded = base64.b64encode(data).decode()
    if part_type == "input_audio":
        return {"type": part_type, "input_audio": {"data": encoded, "format": "wav"}}
    return {"type": part_type, part_type: {"url": f"data:{media_type};base64,{encoded}"}}


#: Questions with no file, which the demo model answers in about 32 tokens of small talk (any
#: answer is right): the mix where decoding, not media, is most of a request's work.
TEXT_QUESTIONS = [
    "Tell me about yourself.",
    "What can you do?",
    "Hello there!",
    "How are you today?",
    "What is your name?",
    "Say something nice.",
]

#: A request body and a word its answer must hold.
Mix = list[tuple[dict[str, Any], str]]


def bodies() -> Mix:
    """One request body per sample file."""
    made = []
    for _, part_type, media_type, name, question, word in QUESTIONS:
        content = [
            part(part_type, media_type, (EXAMPLES / name).read_bytes()),
            {"type": "text", "text": question},
        ]
        made.append(({"model": "builtin:demo", "messages": [{"role": "user", "content": content}]}, word))
    return made


def text_bodies() -> Mix:
    """One request body per question of :data:`TEXT_QUESTIONS`."""
    return [
        ({"model": "builtin:demo", "messages": [{"role": "user", "content": question}]}, "")
        for question in TEXT_QUESTIONS
    ]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    wrong: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    #: Every answer given to each body (by its index in :func:`bodies`).
    answers: dict[int, set[str]] = field(default_factory=dict)

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


@dataclass
class Answer:
    status: int
    text: str
    first_token_s: float | None = None
    retry_after_s: float = 1.0


async def one_request(
    client: httpx.AsyncClient,
    kind: int,
    request: tuple[dict[str, Any], str],
    stream: bool,
    tally: Tally,
    deadline: float,
) -> None:
    """Send the body of ``request`` (a mix's ``kind``-th) until it is answered (retrying 429s
    after Retry-After) or the time is up; its answer must hold the request's word."""
    body, word = request
    start = time.perf_counter()
    while True:
        answer = await (streamed(client, body, start) if stream else plain(client, body))
        tally.count(answer.status)
        if answer.status == 200:
            tally.latencies.append(time.perf_counter() - start)
            if answer.first_token_s is not None:
                tally.first_tokens.append(answer.first_token_s)
            tally.wrong += word not in answer.text
            tally.answers.setdefault(kind, set()).add(answer.text)
            return
        if answer.status != 429:
            tally.errors.append(f"{answer.status}: {answer.text[:200]}")
            return
        if time.perf_counter() + answer.retry_after_s > deadline:
            tally.refused += 1
            return
        await asyncio.sleep(answer.retry_after_s)


def refusal(response: httpx.Response, text: str) -> Answer:
    return Answer(response.status_code, text, retry_after_s=float(response.headers.get("retry-after", 1)))


async def plain(client: httpx.AsyncClient, body: dict[str, Any]) -> Answer:
    response = await client.post("/v1/chat/completions", json=body)
    if response.status_code != 200:
        return refusal(response, response.text)
    return Answer(200, response.json()["choices"][0]["message"]["content"])


async def streamed(client: httpx.AsyncClient, body: dict[str, Any], start: float) -> Answer:
    text, first = "", None
    async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        if response.status_code != 200:
            return refusal(response, (await response.aread()).decode())
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            if delta and first is None:
                first = time.perf_counter() - start
            text += delta
    return Answer(200, text, first)


async def load(
    url: str, clients: int, requests: int, seconds: float, made: Mix | None = None
) -> tuple[Tally, float]:
    """``requests`` requests of ``made`` (:func:`bodies` by default) from ``clients`` concurrent
    clients; the tally and the seconds taken."""
    made = made or bodies()
    tally = Tally()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)
    start = time.perf_counter()
    deadline = start + seconds

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=seconds + 30) as client:
            while time.perf_counter() < deadline:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                kind = index % len(made)
                await one_request(client, kind, made[kind], index % 2 == 1, tally, deadline)

    await asyncio.gather(*(client_loop() for _ in range(clients)))
    tally.refused += queue.qsize()  # never sent: the time ran out
    return tally, time.perf_counter() - start


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, every thread) that process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(max_queue: int, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        *(sys.executable, "-m", "anymodal", "serve", "--port", str(port), "--max-queue", str(max_queue)),
        *options,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("anymodal serve did not start")
        time.sleep(0.2)


def reference(requests: int) -> tuple[float, float]:
    """Requests per second of the same questions asked in-process, one after another, and the
    process's CPU milliseconds per request."""
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.chat import ChatSession

    registry = get_registry()
    session = ChatSession.from_config(load_config(None, [], registry).config, registry)

    def ask(kind: int) -> str:
        modality, _, _, name, question, _ = QUESTIONS[kind]
        session.reset()
        session.attach(modality, EXAMPLES / name)
        return "".join(session.ask(question))

    for kind in range(len(QUESTIONS)):  # warm-up, as the server's
        ask(kind)
    start, cpu = time.perf_counter(), time.process_time()
    wrong = sum(QUESTIONS[i % len(QUESTIONS)][5] not in ask(i % len(QUESTIONS)) for i in range(requests))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if wrong:
        raise RuntimeError(f"the reference got {wrong} answers wrong")
    return requests / elapsed, 1000 * cpu / requests


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def phase(
    max_queue: int, clients: int, requests: int, seconds: float, *options: str, made: Mix | None = None
) -> tuple[dict[str, Any], Tally]:
    """A server with ``max_queue`` (and ``options``) under ``clients``' load of ``made``: its
    figures and tally."""
    made = made or bodies()
    process, url = start_server(max_queue, *options)
    try:
        asyncio.run(load(url, len(made), len(made), seconds, made))  # warm-up: each kind once
        before, cpu = rss_mib(process.pid), cpu_seconds(process.pid)
        tally, elapsed = asyncio.run(load(url, clients, requests, seconds, made))
        after, cpu = rss_mib(process.pid), cpu_seconds(process.pid) - cpu
    finally:
        process.terminate()
        process.wait(timeout=30)
    answered = len(tally.latencies)
    figures = {
        "max_queue": max_queue,
        "clients": clients,
        "requests": requests,
        "answered": answered,
        "refused_at_deadline": tally.refused,
        "lost": requests - answered - tally.refused - len(tally.errors),
        "statuses": tally.statuses,
        "errors": tally.errors[:5],
        "wrong_answers": tally.wrong,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(answered / elapsed, 2),
        "server_cpu_ms_per_request": round(1000 * cpu / max(answered, 1), 1),
        "latency_p50_ms": round(1000 * statistics.median(tally.latencies), 1) if answered else None,
        "latency_p99_ms": round(1000 * percentile(tally.latencies, 0.99), 1),
        "ttft_p50_ms": round(1000 * statistics.median(tally.first_tokens), 1) if tally.first_tokens else None,
        "ttft_p99_ms": round(1000 * percentile(tally.first_tokens, 0.99), 1),
        "rss_before_mib": round(before, 1),
        "rss_after_mib": round(after, 1),
        "rss_growth": round(after / before - 1, 4),
    }
    return figures, tally


def problems(name: str, run: dict[str, Any]) -> list[str]:
    """What went wrong in one phase's figures."""
    return [
        f"{name}: {problem}"
        for problem, bad in (
            ("requests lost", run["lost"]),
            ("errors other than 429", len(run["errors"])),
            ("wrong answers", run["wrong_answers"]),
            ("RSS grew by 10% or more", run["rss_growth"] >= 0.10),
        )
        if bad
    ]


def compare_batching(clients: int, requests: int, seconds: float) -> None:
    """Batching on against off, for the media mix and the text mix, one server after the other in
    this run, and the model's decoding alone; exits non-zero on a problem."""
    result: dict[str, Any] = {}
    failures: list[str] = []
    for mix, made in (("media", bodies()), ("text", text_bodies())):
        runs = {
            "batched": phase(clients, clients, requests, seconds, made=made),
            "one_at_a_time": phase(
                clients, clients, requests, seconds, "--set", "generation.max_batch=1", made=made
            ),
        }
        answers = {name: tally.answers for name, (_, tally) in runs.items()}
        same = answers["batched"] == answers["one_at_a_time"] and all(
            len(texts) == 1 for texts in answers["batched"].values()
        )
        figures = {name: run for name, (run, _) in runs.items()}
        on, off = figures["batched"]["requests_per_s"], figures["one_at_a_time"]["requests_per_s"]
        result[mix] = {**figures, "batched_over_one_at_a_time": round(on / off, 2), "same_answers": same}
        failures += [problem for name, run in figures.items() for problem in problems(f"{mix} {name}", run)]
        if not same:
            failures.append(f"{mix}: the answers differ between batching on and off")
    result["decode_only"] = decode_only(clients)
    print(json.dumps(result, indent=2))
    if failures:
        sys.exit("benchmark failed: " + "; ".join(failures))


def decode_only(rows: int, repeats: int = 3) -> dict[str, Any]:
    """The demo model's decoding of ``rows`` text prompts, in-process with no HTTP: one at a time
    against together (:meth:`Bridge.generate_batch`), best of ``repeats``; what batching can give
    when nothing else takes time."""
    import torch

    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.chat import ChatMessage, ChatSession

    registry = get_registry()
    session = ChatSession.from_config(load_config(None, [], registry).config, registry)
    prompts = []
    for index in range(rows):
        asked, text = session.for_messages([ChatMessage("user", TEXT_QUESTIONS[index % len(TEXT_QUESTIONS)])])
        prompts.append(asked.begin_turn(text).embeds)
    bridge, config = session.model.bridge, session.generation
    alone, together = float("inf"), float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        one = [
            "".join(bridge.generate(p, torch.ones(p.shape[:2], dtype=torch.long), config)) for p in prompts
        ]
        alone = min(alone, time.perf_counter() - start)
        start = time.perf_counter()
        batch = ["".join(row) for row in bridge.generate_batch(prompts, [config] * rows)]
        together = min(together, time.perf_counter() - start)
    return {
        "rows": rows,
        "one_at_a_time_s": round(alone, 4),
        "batched_s": round(together, 4),
        "batched_over_one_at_a_time": round(alone / together, 2),
        "same_answers": one == batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, help="concurrent clients [32; 16 with --batching]")
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--seconds", type=float, default=180.0, help="time bound of each phase")
    parser.add_argument("--max-queue", type=int, default=32, help="the server's queue in the main phase")
    parser.add_argument(
        "--refusal-requests", type=int, default=96, help="requests of the --max-queue 2 phase"
    )
    parser.add_argument("--batching", action="store_true", help="batching on against off instead")
    args = parser.parse_args()
    if args.batching:
        compare_batching(args.clients or 16, args.requests, args.seconds)
        return
    clients = args.clients or 32

    served, _ = phase(args.max_queue, clients, args.requests, args.seconds)
    direct, direct_cpu = reference(args.requests)
    refusals, _ = phase(2, clients, args.refusal_requests, args.seconds)
    result = {
        "served": served,
        "reference_requests_per_s": round(direct, 2),
        "reference_cpu_ms_per_request": round(direct_cpu, 1),
        "served_over_reference": round(served["requests_per_s"] / direct, 3),
        "small_queue": refusals,
    }
    print(json.dumps(result, indent=2))
    failures = problems("served", served) + problems("small_queue", refusals)
    if failures:
        sys.exit("benchmark failed: " + "; ".join(failures))


if __name__ == "__main__":
    main()
