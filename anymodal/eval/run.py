"""Running an evaluation: every item asked of a chat session, and the run written as a report."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.config.load import LoadedConfig, load_config
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import Registry
from anymodal.eval.asking import Questions, ask_groups
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
    """Ask the model about every item: a fresh conversation per item, with the record's media
    (:func:`~anymodal.eval.asking.ask_groups`, up to ``max_batch`` decoded together).
    ``progress(done, total)`` follows each item. A record whose media fail to load (a corrupt
    file) is listed in ``failed`` and skipped.
    """
    total = sum(len(record.items) for record in records)
    run = EvalRun()
    done = 0

    def failed(number: int, error: str) -> None:
        nonlocal done
        run.failed.append((records[number].source, error))
        done += len(records[number].items)

    groups = (Questions(record.media, [item.question for item in record.items]) for record in records)
    replies: dict[tuple[int, int], str] = {}
    for number, index, reply in ask_groups(session, groups, max_batch, failed):
        replies[number, index] = reply
        done += 1
        if progress is not None:
            progress(done, total)
    run.scored = [
        ScoredItem(record, item, replies[key], item.score(replies[key]))
        for number, record in enumerate(records)
        for index, item in enumerate(record.items)
        if (key := (number, index)) in replies
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
