"""``anymodal data generate``: instruction data written by a teacher LLM from annotation records.

Each annotation record (JSON Lines or a JSON list: the media of each modality under its name, as in
training data, and any annotations: ``captions``, ``boxes``, ``timestamps``, attributes, free
fields) is asked for every kind of the spec: one request each, to an OpenAI-compatible teacher, up
to ``concurrency`` at once. Every reply is checked (:mod:`~anymodal.data.replies`) and then run
through the trainer's own validation, so what is written is what ``anymodal train`` reads:

* kept: a line of ``OUT`` in the trainer's format, ``{"id": "<record>/<kind>", "<modality>": path,
  "conversations": [...], "meta": {"kind", "source", "teacher"}}``, media paths relative to OUT;
* rejected: a line of ``OUT.rejected.jsonl``, ``{"id", "reason", "detail", "reply"}``.

Both files are appended a line at a time; a rerun skips the ids either holds (delete the rejected
file to ask again for those), so a killed run goes on where it stopped. A request the teacher
fails after its retries is written nowhere, and a rerun asks it again; an error no retry can mend
(a bad key, a wrong URL or model) stops the run at once.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from anymodal.contract.errors import UsageError
from anymodal.contract.wording import plural
from anymodal.data.kinds import BUILTIN_KINDS, pick_instruction, render_context, teacher_messages
from anymodal.data.replies import (
    REJECTIONS,
    NearDuplicates,
    Rejected,
    check_finished,
    check_placeholders,
    question_answers,
    shingles,
)
from anymodal.data.spec import KindSpec, LoadedSpec
from anymodal.data.teacher import Teacher, TeacherError, TeacherOptions, TeacherReply, TeacherSettings
from anymodal.files.appended import Appended, open_appended, read_appended
from anymodal.train.data import read_records
from anymodal.train.data_file import load_entries

REJECTED_SUFFIX = ".rejected.jsonl"


@dataclass(frozen=True)
class Annotation:
    """One annotation record: its id, its media (modality, absolute path) and everything else."""

    id: str
    source: str
    media: tuple[tuple[str, Path], ...]
    fields: Mapping[str, Any]

    @property
    def modalities(self) -> list[str]:
        return [modality for modality, _ in self.media]


@dataclass(frozen=True)
class Request:
    """One record asked for one kind."""

    annotation: Annotation
    kind_name: str
    kind: KindSpec

    @property
    def id(self) -> str:
        return f"{self.annotation.id}/{self.kind_name}"


@dataclass
class Summary:
    """What a run did: requests written, rejected by reason, failed; tokens and cost."""

    requests: int = 0
    already_done: int = 0
    written: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    #: Tries beyond the first that the answered requests took (429s, 5xx, timeouts).
    retries: int = 0
    skipped_records: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def lines(self) -> list[str]:
        """The run in a few lines, for people."""
        rejected = ", ".join(
            f"{reason} {self.rejected[reason]}" for reason in REJECTIONS if self.rejected[reason]
        )
        out = [
            f"{plural(self.requests, 'request')}: {self.written} written, "
            f"{sum(self.rejected.values())} rejected{f' ({rejected})' if rejected else ''}, "
            f"{self.failed} failed, {self.already_done} done before; {self.retries} retried",
            f"tokens: {self.prompt_tokens} prompt, {self.completion_tokens} completion; cost {self.cost:.4f}",
        ]
        if self.skipped_records:
            out.append(
                f"skipped {plural(len(self.skipped_records), 'annotation record')}: {self.skipped_records[0]}"
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "already_done": self.already_done,
            "written": self.written,
            "rejected": {reason: self.rejected[reason] for reason in REJECTIONS if self.rejected[reason]},
            "failed": self.failed,
            "retries": self.retries,
            "skipped_records": self.skipped_records,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
        }


def read_annotations(
    file: Path, media_root: Path, placeholders: Mapping[str, str]
) -> tuple[list[Annotation], list[str]]:
    """The annotation records, and a line per record skipped (its media missing): nothing is asked
    about a record that could not become training data. A file that cannot be read, a record that
    is not an object, or an id used twice is one UsageError naming the file and the record."""
    annotations: list[Annotation] = []
    skipped: list[str] = []
    seen: dict[str, str] = {}
    for source, raw in load_entries(file):
        if not isinstance(raw, dict):
            raise UsageError(f"{source}: an annotation record is a JSON object, got {type(raw).__name__}")
        record_id = str(raw.get("id", source))
        if record_id in seen:
            raise UsageError(
                f"{source}: id {record_id!r} is used by {seen[record_id]} too",
                hint="give each record its own id",
            )
        seen[record_id] = source
        media, fields, missing = [], {}, []
        for key, value in raw.items():
            if key == "id":
                continue
            if key in placeholders and _paths(value) is not None:
                for written in _paths(value) or []:
                    path = (media_root / written).resolve()
                    media.append((key, path))
                    if not path.is_file():
                        missing.append(f"{key} file {written} not found under {media_root}")
            else:
                fields[key] = value
        if missing:
            skipped.append(f"{source}: {missing[0]}")
            continue
        annotations.append(Annotation(record_id, source, tuple(media), fields))
    return annotations, skipped


@dataclass(frozen=True)
class Plan:
    """A generation about to run: every request, and what earlier runs wrote (kept or rejected)."""

    loaded: LoadedSpec
    output: Path
    requests: tuple[Request, ...]
    kept: Appended
    rejected: Appended
    skipped_records: tuple[str, ...]
    placeholders: Mapping[str, str]

    @property
    def todo(self) -> list[Request]:
        done = self.kept.lines.keys() | self.rejected.lines.keys()
        return [request for request in self.requests if request.id not in done]


def plan(
    loaded: LoadedSpec, output: str | Path, placeholders: Mapping[str, str], limit: int | None = None
) -> Plan:
    """Read the annotations (the first ``limit``) and what an earlier run into ``output`` left;
    nothing is sent yet."""
    target = Path(output)
    if target.is_dir():
        raise UsageError(f"the output {target} is a folder", hint="give -o a file name, e.g. -o data.jsonl")
    if not target.parent.is_dir():
        raise UsageError(
            f"cannot write {target}: the folder {target.parent} does not exist", hint="create it first"
        )
    annotations, skipped = read_annotations(loaded.annotations, loaded.media_root, placeholders)
    annotations = annotations[:limit] if limit is not None else annotations
    kinds = {**BUILTIN_KINDS, **loaded.spec.define}
    requests = tuple(Request(a, name, kinds[name]) for a in annotations for name in loaded.spec.kinds)
    hint = "is -o the right file? give a new one to start over"
    kept = read_appended(target, "id", "a generated record", "anymodal data generate", hint)
    rejected = read_appended(_rejected_path(target), "id", "a rejected reply", "anymodal data generate", hint)
    return Plan(loaded, target, requests, kept, rejected, tuple(skipped), dict(placeholders))


def run(
    plan: Plan,
    teacher: Teacher,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Ask the teacher for every request left, keeping or rejecting each reply as it comes."""
    spec = plan.loaded.spec
    todo = plan.todo
    summary = Summary(requests=len(plan.requests), already_done=len(plan.requests) - len(todo))
    summary.skipped_records = list(plan.skipped_records)
    duplicates = NearDuplicates(spec.near_duplicate)
    for line in plan.kept.lines.values():
        duplicates.keep(
            str(line.get("meta", {}).get("kind")), line["id"], _conversation_shingles(line, plan.placeholders)
        )
    price = spec.teacher.price
    with (
        open_appended(plan.kept) as keep,
        open_appended(plan.rejected) as reject,
        ThreadPoolExecutor(max_workers=spec.concurrency, thread_name_prefix="anymodal-teacher") as pool,
    ):
        for done, (request, outcome) in enumerate(_answers(pool, teacher, todo, spec.concurrency), 1):
            if isinstance(outcome, TeacherError):
                if outcome.fatal:
                    raise outcome
                summary.failed += 1
            else:
                summary.retries += outcome.attempts - 1
                summary.prompt_tokens += outcome.prompt_tokens
                summary.completion_tokens += outcome.completion_tokens
                try:
                    record = build_record(request, outcome, plan, teacher.settings.model)
                    grams = _conversation_shingles(record, plan.placeholders)
                    copied = duplicates.similar(request.kind_name, grams)
                    if copied is not None:
                        raise Rejected("near-duplicate", f"nearly the same as {copied}")
                except Rejected as rejection:
                    summary.rejected[rejection.reason] += 1
                    reject(
                        {
                            "id": request.id,
                            "reason": rejection.reason,
                            "detail": rejection.detail,
                            "reply": outcome.text,
                        }
                    )
                else:
                    duplicates.keep(request.kind_name, request.id, grams)
                    keep(record)
                    summary.written += 1
            if progress is not None:
                progress(done, len(todo))
    summary.cost = (
        summary.prompt_tokens * price.prompt_per_million
        + summary.completion_tokens * price.completion_per_million
    ) / 1e6
    return summary


def build_record(request: Request, reply: TeacherReply, plan: Plan, teacher_model: str) -> dict[str, Any]:
    """The training record a reply makes, checked as the trainer checks it; or :class:`Rejected`."""
    text = check_finished(reply.text, reply.finish_reason)
    annotation, kind = request.annotation, request.kind
    if kind.reply == "conversation":
        pairs = question_answers(text)
    else:
        instruction = pick_instruction(
            kind, annotation.id, request.kind_name, plan.loaded.spec.seed, annotation.modalities
        )
        pairs = [(instruction, text)]
    wanted = [plan.placeholders[modality] for modality in annotation.modalities]
    questions = [question for question, _ in pairs]
    known = plan.placeholders.values()
    if kind.placeholders == "auto":
        check_placeholders(questions, [], known)  # the teacher was not to write any
        if wanted:
            pairs[0] = ("\n".join(wanted) + "\n" + pairs[0][0], pairs[0][1])
    else:
        check_placeholders(questions, wanted, known)
    check_placeholders([answer for _, answer in pairs], [], known, "answers")  # the reply never holds one
    turns = [
        {"from": speaker, "value": value}
        for question, answer in pairs
        for speaker, value in (("human", question), ("gpt", answer))
    ]
    folder = plan.output.parent.resolve()
    paths: dict[str, list[str]] = {}
    for modality, path in annotation.media:
        paths.setdefault(modality, []).append(os.path.relpath(path, folder))
    record: dict[str, Any] = {"id": request.id}
    # One file of a modality is a path, several a list, as the trainer reads them.
    record.update({modality: files[0] if len(files) == 1 else files for modality, files in paths.items()})
    record["conversations"] = turns
    record["meta"] = {
        "kind": request.kind_name,
        "source": annotation.id,
        "teacher": teacher_model,
    }
    _, report = read_records(
        plan.output, placeholders=plan.placeholders, media_root=folder, entries=[(request.id, record)]
    )
    if report.problems:
        problem = report.problems[0]
        raise Rejected("invalid", f"{problem.kind}: {problem.detail}")
    return record


def teacher_settings(loaded: LoadedSpec, url: str | None, model: str | None) -> TeacherSettings:
    """The teacher's settings: the spec's, with ``--teacher-url``/``--teacher-model`` over them and
    the key from the environment."""
    teacher = loaded.spec.teacher
    url, model = url or teacher.url, model or teacher.model
    if not url or not model:
        missing = " and ".join(
            name for name, value in (("--teacher-url", url), ("--teacher-model", model)) if not value
        )
        raise UsageError(
            f"no teacher: give {missing}, or teacher.url and teacher.model in {loaded.file}",
            hint="any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, or `anymodal serve` with a text LLM",
        )
    options = {option.name: getattr(teacher, option.name) for option in fields(TeacherOptions)}
    key = os.environ.get(teacher.key_env) or None
    return TeacherSettings(url=url.rstrip("/"), model=model, api_key=key, **options)


def _answers(
    pool: ThreadPoolExecutor, teacher: Teacher, todo: list[Request], concurrency: int
) -> Iterator[tuple[Request, TeacherReply | TeacherError]]:
    """Each request with its reply (or the teacher's error), as each ends; at most twice
    ``concurrency`` requests submitted at once, so a long run holds no queue of them all."""
    pending: dict[Future[TeacherReply], Request] = {}
    queue = iter(todo)
    try:
        while True:
            while len(pending) < 2 * concurrency and (request := next(queue, None)) is not None:
                context = render_context(request.annotation.fields)
                messages = teacher_messages(request.kind, context, request.annotation.modalities)
                pending[pool.submit(teacher.complete, messages)] = request
            if not pending:
                return
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                request = pending.pop(future)
                error = future.exception()
                if error is not None and not isinstance(error, TeacherError):
                    raise error
                yield request, error if isinstance(error, TeacherError) else future.result()
    finally:
        for future in pending:
            future.cancel()


def _conversation_shingles(record: Mapping[str, Any], placeholders: Mapping[str, str]) -> frozenset[str]:
    texts = []
    for turn in record.get("conversations", []):
        text = str(turn.get("value", ""))
        for placeholder in placeholders.values():
            text = text.replace(placeholder, " ")
        texts.append(text)
    return shingles(texts)


def _paths(value: Any) -> list[str] | None:
    if isinstance(value, str) and value.strip():
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) and item.strip() for item in value):
        return list(value)
    return None


def _rejected_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".jsonl") + REJECTED_SUFFIX)
