"""``anymodal batch``: a file of requests in the OpenAI Batch API's formats, answered in this process
by :class:`~anymodal.serve.service.Service`, without HTTP, so that each request is checked and
answered exactly as ``anymodal serve`` would answer it.

The input is JSON Lines, one request a line: ``{"custom_id": "request-1", "method": "POST", "url":
"/v1/chat/completions", "body": {...}}`` (or ``"url": "/v1/embeddings"``); blank lines are skipped.
Each request gets one output line, OpenAI's batch output object ``{"id": "batch_req_<hex>",
"custom_id", "response": {"status_code", "request_id", "body"}, "error": null}``, whose ``body`` is
the server's answer: a ``chat.completion``, an embedding list, or the server's ``{"error": ...}``
with its status (400 for a bad request, 404 for another model, 413 for a line over the size limit,
500 when the model fails). ``stream: true`` is a 400: a batch writes each reply whole.

A line that is no request at all (not JSON, not an object, no ``custom_id`` or one used before, a
method other than POST, another url) gets ``"response": null`` and ``"error": {"code", "message",
"param", "line"}`` (the line number, counted from 1, blank lines included), under its own
``custom_id`` when it has one of its own, else ``line-<number>`` (``line-<number>-2`` and on if the
file uses that id), so a rerun finds it done too.

Output lines are appended whole, each flushed and fsync'd. A rerun with the same output skips the
custom_ids it holds; a last line cut short by a kill (no newline, or not JSON) is cut off first and
its request runs again. An output holding custom_ids the input does not have, or a damaged line
before its last, is refused: it belongs to another batch (or the input changed), and appending
would mix the two.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from anymodal.contract.errors import AnymodalError, UsageError
from anymodal.files.appended import Appended, open_appended, read_appended
from anymodal.serve.errors import ApiError, bad_request, from_anymodal, internal_error
from anymodal.serve.requests import parse_chat, parse_embeddings

if TYPE_CHECKING:
    from anymodal.serve.service import Service

log = logging.getLogger("anymodal.batch")

CHAT_URL = "/v1/chat/completions"
EMBEDDINGS_URL = "/v1/embeddings"
#: The endpoints a batch line may name.
URLS = (CHAT_URL, EMBEDDINGS_URL)
#: What a request line looks like, for the errors of lines that are not one.
LINE_SHAPE = '{"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {...}}'


@dataclass(frozen=True)
class LineError:
    """Why an input line is not a request: a ``code`` (``invalid_json``, ``missing_custom_id``, ...),
    a message naming the line, and the field at fault, as in the errors of OpenAI's batches."""

    code: str
    message: str
    param: str | None = None


@dataclass(frozen=True)
class InputLine:
    """One input line, checked as a line (its body is read and checked when it runs): where it is
    in the file, its custom_id, and its url, or the :class:`LineError` that makes it no request."""

    number: int
    custom_id: str
    offset: int
    size: int
    url: str | None = None
    problem: LineError | None = None


@dataclass(frozen=True)
class Plan:
    """A batch about to run: the input's lines, the custom_ids the output holds already, and how
    much of the output to keep (all but a half-written last line)."""

    input: Path
    output: Path
    lines: tuple[InputLine, ...]
    done: frozenset[str]
    keep_bytes: int = 0
    cut_bytes: int = 0

    @property
    def todo(self) -> list[InputLine]:
        """The lines still to answer, in the input's order."""
        return [line for line in self.lines if line.custom_id not in self.done]


@dataclass(frozen=True)
class Summary:
    """What a run did; ``done`` counts the lines answered by this run, ``skipped_already_done`` those
    the output held before it."""

    input: str
    output: str
    model: str | None
    total: int
    done: int
    succeeded: int
    failed: int
    skipped_already_done: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def line(self) -> str:
        """The summary in one line, for people."""
        skipped = f"; {self.skipped_already_done} already done before" if self.skipped_already_done else ""
        return (
            f"anymodal batch: {self.done} of {self.total} lines answered in {self.seconds:.1f} s "
            f"({self.succeeded} succeeded, {self.failed} failed){skipped}; results in {self.output}"
        )


# -- the input and the output, before anything runs ----------------------------------------------------


def plan(input: str | os.PathLike[str], output: str | os.PathLike[str]) -> Plan:
    """Check the input and the output, and find what is left to do; a problem is a UsageError."""
    source, target = Path(input), Path(output)
    if not source.is_file():
        what = "is a folder, not a file" if source.is_dir() else "not found"
        raise UsageError(f"batch input {what}: {source}", hint="give a .jsonl file of requests")
    if _same_file(source, target):
        raise UsageError(
            f"the output {target} is the input file", hint="write the results to another file with -o"
        )
    if target.is_dir():
        raise UsageError(f"the output {target} is a folder", hint="give -o a file name, e.g. -o out.jsonl")
    if not target.parent.is_dir():
        raise UsageError(
            f"cannot write {target}: the folder {target.parent} does not exist", hint="create it first"
        )
    lines = read_input(source)
    if not lines:
        raise UsageError(f"the batch input {source} holds no requests", hint=f"one a line: {LINE_SHAPE}")
    earlier = read_output(target, {line.custom_id for line in lines}, source)
    return Plan(source, target, tuple(lines), frozenset(earlier.lines), earlier.keep_bytes, earlier.cut_bytes)


def read_input(path: Path) -> list[InputLine]:
    """Every non-blank line of ``path``, checked as a request line (not its body)."""
    checked: list[tuple[int, int, int, str | None, str | None, LineError | None]] = []
    seen: dict[str, int] = {}
    offset = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, 1):
            if raw.strip():
                custom_id, url, problem = _check_line(raw, number)
                if custom_id is not None and custom_id in seen:
                    problem = LineError(
                        "duplicate_custom_id",
                        f"line {number} reuses the custom_id {custom_id!r} of line {seen[custom_id]}: "
                        "each request needs a custom_id of its own",
                        "custom_id",
                    )
                    custom_id = None
                elif custom_id is not None:
                    seen[custom_id] = number
                checked.append((number, offset, len(raw), custom_id, url, problem))
            offset += len(raw)
    taken = set(seen)
    lines = []
    for number, start, size, custom_id, url, problem in checked:
        if custom_id is None:
            custom_id = _line_id(number, taken)
            taken.add(custom_id)
        lines.append(InputLine(number, custom_id, start, size, url if problem is None else None, problem))
    return lines


def _check_line(raw: bytes, number: int) -> tuple[str | None, str | None, LineError | None]:
    """(custom_id, url, problem) of one line; the custom_id is None when the line has no usable one."""
    try:
        item = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
    except UnicodeDecodeError:
        return None, None, LineError("invalid_json", f"line {number} is not UTF-8 text")
    except json.JSONDecodeError as error:
        message = f"line {number} is not valid JSON ({error.msg} at column {error.colno})"
        return None, None, LineError("invalid_json", message)
    if not isinstance(item, dict):
        return None, None, LineError("invalid_line", f"line {number} is not a request: expected {LINE_SHAPE}")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        message = f"line {number} has no custom_id: each request needs a non-empty string custom_id"
        return None, None, LineError("missing_custom_id", message, "custom_id")
    method = item.get("method")
    if method != "POST":
        message = f"line {number}: method must be 'POST', not {method!r}"
        return custom_id, None, LineError("invalid_method", message, "method")
    url = item.get("url")
    if url not in URLS:
        message = f"line {number}: url must be {' or '.join(repr(u) for u in URLS)}, not {url!r}"
        return custom_id, None, LineError("invalid_url", message, "url")
    return custom_id, url, None


def _line_id(number: int, taken: set[str]) -> str:
    """``line-<number>``: the custom_id of a line without one of its own, unless the file uses it."""
    candidate, again = f"line-{number}", 1
    while candidate in taken:
        again += 1
        candidate = f"line-{number}-{again}"
    return candidate


def read_output(path: Path, ids: set[str], input: Path) -> Appended:
    """What an earlier run left in the output (nothing if it is missing), checked to be this
    input's: a half-written last line is the part to cut."""
    earlier = read_appended(
        path,
        "custom_id",
        "a batch output line",
        "anymodal batch",
        "is -o the right file? give a new one to start over",
    )
    foreign = [custom_id for custom_id in earlier.lines if custom_id not in ids]
    if foreign:
        shown = ", ".join(repr(custom_id) for custom_id in foreign[:3]) + (", ..." * (len(foreign) > 3))
        raise UsageError(
            f"{path} holds {len(foreign)} result(s) for custom_ids that {input} does not have ({shown}): "
            "it is another batch's output, or the input changed",
            hint="give a new -o file, or delete those lines to resume",
        )
    return earlier


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


# -- running ----------------------------------------------------------------------------------------


def run(
    plan: Plan,
    service: Service | None,
    on_line: Callable[[Mapping[str, Any]], None] | None = None,
) -> Summary:
    """Answer ``plan``'s lines left to do, appending each output line as it is answered, in the
    input's order; ``on_line`` sees each one once it is on disk. As many requests run at once as
    the service decodes together (``generation.max_batch``), each in its own thread; a line is
    written when it and every line before it are answered. ``service`` may be None only when
    nothing is left to do."""
    todo = plan.todo
    if todo and service is None:
        raise ValueError("a Service is needed to answer the batch's requests")
    started = time.monotonic()
    succeeded = failed = 0
    window = service.worker.slots if service is not None else 1
    pool = ThreadPoolExecutor(max_workers=window, thread_name_prefix="anymodal-batch")
    try:
        earlier = Appended(plan.output, keep_bytes=plan.keep_bytes, cut_bytes=plan.cut_bytes)
        with open_appended(earlier) as write, plan.input.open("rb") as source:
            answering: deque[Future[dict[str, Any]]] = deque()
            lines = iter(todo)
            while True:
                while service is not None and len(answering) < window:
                    line = next(lines, None)
                    if line is None:
                        break
                    answering.append(
                        pool.submit(answer_read, line, read_line(line, source, service), service)
                    )
                if not answering:
                    break
                record = answering.popleft().result()
                write(record)
                if is_success(record):
                    succeeded += 1
                else:
                    failed += 1
                if on_line is not None:
                    on_line(record)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return Summary(
        input=str(plan.input),
        output=str(plan.output),
        model=service.model_id if service is not None else None,
        total=len(plan.lines),
        done=succeeded + failed,
        succeeded=succeeded,
        failed=failed,
        skipped_already_done=len(plan.lines) - len(todo),
        seconds=round(time.monotonic() - started, 3),
    )


def is_success(record: Mapping[str, Any]) -> bool:
    """Whether an output line is an answer (status 200), not an error."""
    response = record.get("response")
    return isinstance(response, Mapping) and response.get("status_code") == 200


#: An input line read: the output line already (a line that is no request, or too large), or
#: the request's url and body.
ReadLine = dict[str, Any] | tuple[str, Any]


def read_line(line: InputLine, source: IO[bytes], service: Service) -> ReadLine:
    """What :func:`answer_read` answers for ``line``, read from ``source`` (in one thread: the
    reads share its position)."""
    if line.problem is not None or line.url is None:
        problem = line.problem or LineError("invalid_line", f"line {line.number} is not a request")
        error = {**dataclasses.asdict(problem), "line": line.number}
        return {"id": _record_id(), "custom_id": line.custom_id, "response": None, "error": error}
    limit_mb = service.options.max_request_mb
    if line.size > limit_mb * 2**20:
        message = f"the request is larger than the limit of {limit_mb:g} MB (--max-request-mb)"
        return _record(line, *_refusal(ApiError(413, message, code="request_too_large")))
    return line.url, _body(line, source)


def answer_read(line: InputLine, read: ReadLine, service: Service) -> dict[str, Any]:
    """The output line of ``line``, read as :func:`read_line` read it (blocks while it runs)."""
    if isinstance(read, dict):
        return read
    url, body = read
    return _record(line, *answer(service, url, body, line.custom_id))


def _body(line: InputLine, source: IO[bytes]) -> Any:
    """The request's body, read again from the input (checked as a line when the run began)."""
    source.seek(line.offset)
    raw = source.read(line.size)
    try:
        request = json.loads(raw.decode("utf-8-sig" if line.number == 1 else "utf-8"))
    except ValueError:
        request = None
    if not isinstance(request, dict) or request.get("custom_id") != line.custom_id:
        raise UsageError(
            f"the batch input changed while it ran: line {line.number} is not what it was",
            hint="rerun the same command: it goes on from the results written so far",
        )
    return request.get("body")


def _record(line: InputLine, status: int, body: dict[str, Any]) -> dict[str, Any]:
    response = {"status_code": status, "request_id": uuid.uuid4().hex, "body": body}
    return {"id": _record_id(), "custom_id": line.custom_id, "response": response, "error": None}


def answer(service: Service, url: str, body: Any, custom_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of one request to ``url`` (:data:`CHAT_URL` or :data:`EMBEDDINGS_URL`),
    as the server answers it: every refusal is OpenAI's error JSON with the server's status, an
    unexpected failure a one-line 500 (its traceback logged, naming ``custom_id``)."""
    endpoint = _chat if url == CHAT_URL else _embeddings
    try:
        return 200, endpoint(service, body)
    except ApiError as error:
        return _refusal(error)
    except AnymodalError as error:
        return _refusal(from_anymodal(error))
    except Exception as error:
        log.exception("batch request %r failed", custom_id)
        return _refusal(internal_error(error))


def _chat(service: Service, body: Any) -> dict[str, Any]:
    request = parse_chat(body, service.types, service.model_id)
    if request.stream:
        raise bad_request(
            "stream is not supported in a batch: each reply is written whole to the output (leave "
            "stream out, or false)",
            "stream",
            "invalid_request",
        )
    return service.completion(service.begin_chat(request, service.worker.admit()))


def _embeddings(service: Service, body: Any) -> dict[str, Any]:
    return service.embeddings(parse_embeddings(body, service.types, service.model_id), service.worker.admit())


def _refusal(error: ApiError) -> tuple[int, dict[str, Any]]:
    return error.status, error.body()


def _record_id() -> str:
    return f"batch_req_{uuid.uuid4().hex}"


def records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The output lines of ``path``, parsed (for tests and scripts reading results)."""
    with Path(path).open("rb") as file:
        for raw in file:
            if raw.strip():
                yield json.loads(raw)


__all__ = [
    "CHAT_URL",
    "EMBEDDINGS_URL",
    "InputLine",
    "LineError",
    "Plan",
    "Summary",
    "answer",
    "answer_read",
    "is_success",
    "plan",
    "read_input",
    "read_line",
    "read_output",
    "records",
    "run",
]
