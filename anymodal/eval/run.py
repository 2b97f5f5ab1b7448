"""Running an evaluation: every item asked of a chat session, and the run written as a report."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.config.load import LoadedConfig, load_config
from anymodal.contract.errors import AnymodalError, UsageError
from anymodal.contract.registry import Registry
from anymodal.eval.data import EvalData, EvalItem, EvalRecord, find_data_file, load_eval_data
from anymodal.eval.scoring import summarise
from anymodal.files.atomic import atomic_file

if TYPE_CHECKING:
    from anymodal.runtime.chat import ChatSession

#: Evaluation decodes greedily; it comes before the caller's overrides, which may change it.
GREEDY = "generation.do_sample=false"


def load_evaluation(
    model_source: str | None, data: str | Path, overrides: Sequence[str], registry: Registry
) -> tuple[LoadedConfig, EvalData]:
    """The model's config (greedy unless ``overrides`` say otherwise) and the data, read and checked
    against the model's modalities, all before any model loads: a bad path or record costs nothing."""
    file = find_data_file(data)
    loaded = load_config(model_source, [GREEDY, *overrides], registry)
    placeholders = {name: registry.modalities[name].placeholder for name in loaded.config.model.modalities}
    return loaded, load_eval_data(file, placeholders)


@dataclass(frozen=True)
class ScoredItem:
    """An item of a record with the model's reply and whether it was right."""

    record: EvalRecord
    item: EvalItem
    reply: str
    correct: bool

    def outcome(self) -> tuple[str, str, bool]:
        """``(modality, kind, correct)``, what :func:`summarise` counts."""
        return self.record.modality, self.item.kind, self.correct

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.record.id,
            "turn": self.item.turn,
            "modality": self.record.modality,
            "kind": self.item.kind,
            "question": self.item.question,
            "reply": self.reply,
            "reference": self.item.reference,
            "correct": self.correct,
        }


@dataclass
class EvalRun:
    """Every scored item, and the records whose media failed to load (source, error), not scored."""

    scored: list[ScoredItem] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def run_records(
    session: ChatSession,
    records: Sequence[EvalRecord],
    progress: Callable[[int, int], None] | None = None,
    max_batch: int = 1,
) -> EvalRun:
    """Ask the model about every item: a fresh conversation per item, with the record's media.

    A record's files are decoded and encoded once for all its items (its items' sessions share a
    cache of encodings kept to the record, so it does not grow with the dataset, and ``session``'s
    model, processor, generation settings and kept KV caches). Up to ``max_batch`` items are
    decoded together when the model's bridge can (``generation.max_batch``), the next record's
    media read as places free up; the replies are the same either way (greedy).
    ``progress(done, total)`` follows each item. A record whose media fail to load (a corrupt
    file) is listed in ``failed`` and skipped.
    """
    from anymodal.runtime.batching import ask_together
    from anymodal.runtime.chat import ChatSession

    total = sum(len(record.items) for record in records)
    run, asked = EvalRun(), []
    done = 0

    def asks() -> Iterator[tuple[ChatSession, str]]:
        nonlocal done
        for record in records:
            # a record's items share their prompt's start, its media: the KV caches are shared too
            per_record = ChatSession(
                session.model,
                session.processor,
                session.generation,
                session.system_prompt,
                prefixes=session.prefixes,
            )
            try:
                prepared = [per_record.model.prepare(modality, path) for modality, path in record.media]
                for inputs in prepared:
                    _ = inputs.key  # hash now, as the file is when it was read
            except AnymodalError as error:
                run.failed.append((record.source, str(error)))
                done += len(record.items)
                continue
            for item in record.items:
                asked.append((record, item))
                yield per_record.fork(prepared), item.question

    if max_batch > 1 and session.model.bridge.supports_batching:
        answers = ask_together(asks(), max_batch)
    else:
        answers = ((index, "".join(one.ask(text))) for index, (one, text) in enumerate(asks()))
    replies: dict[int, str] = {}
    for index, reply in answers:
        replies[index] = reply
        done += 1
        if progress is not None:
            progress(done, total)
    run.scored = [
        ScoredItem(record, item, replies[index], item.score(replies[index]))
        for index, (record, item) in enumerate(asked)
    ]
    return run


def report_dict(model: str, data: EvalData, run: EvalRun) -> dict[str, Any]:
    """The JSON form of a run: counts, per modality and kind, and every item with its reply."""
    summary = summarise(item.outcome() for item in run.scored)
    return {
        "model": model,
        "data": str(data.file),
        "items": summary.overall.items,
        "skipped_records": data.skipped + len(run.failed),
        "overall": summary.overall.to_dict(),
        "by_modality": {modality: tally.to_dict() for modality, tally in summary.by_modality.items()},
        "by_kind": {
            modality: {kind: tally.to_dict() for kind, tally in kinds.items()}
            for modality, kinds in summary.by_kind.items()
        },
        "items_detail": [item.to_dict() for item in run.scored],
    }


def write_json(path: str | Path, value: Any) -> Path:
    """Write ``value`` as JSON to ``path`` atomically (a temporary file beside it, then a rename)."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"output {target} is a directory", hint="pass a file path with --output")
    with atomic_file(target) as temporary:
        temporary.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target
