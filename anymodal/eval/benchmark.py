"""Running a public benchmark (``anymodal eval --benchmark NAME --data PATH``): its questions read
by its plugin, asked of the model, every reply kept as it comes, and the official scores written.

The output folder holds three files:

* ``run.json``: which benchmark, model and data the predictions are of, written first; a rerun
  into the same folder goes on only when these match.
* ``predictions.jsonl``: one line per answered question, appended as each reply ends (flushed and
  fsync'd): ``{"id", "question", "media": [[modality, path]], "reply", "fields"}``. A rerun skips
  the ids it holds, so a killed run goes on where it stopped; a half-written last line is cut off.
* ``metrics.json``: the scores of every answered question (the spec's ``score``), with counts and
  the questions whose files failed to load (not scored, and asked again by a rerun).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.contract.benchmarks import BenchmarkItem, BenchmarkSpec
from anymodal.contract.errors import UsageError
from anymodal.eval.asking import Questions, ask_groups
from anymodal.eval.run import write_json
from anymodal.files.appended import Appended, open_appended, read_appended

if TYPE_CHECKING:
    from anymodal.runtime.chat import ChatSession

RUN_FILE = "run.json"
PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"


def read_items(spec: BenchmarkSpec, data: str | Path, limit: int | None = None) -> list[BenchmarkItem]:
    """The benchmark's questions under ``data`` (the first ``limit`` of them), checked: the path
    exists and holds at least one question, and no id is used twice."""
    path = Path(data)
    if not path.exists():
        raise UsageError(
            f"{path}: no such file or folder for benchmark {spec.name}", hint=f"--data is {spec.data}"
        )
    items = list(spec.read(path))
    if not items:
        raise UsageError(f"{path} holds no {spec.name} questions", hint=f"--data is {spec.data}")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise UsageError(
                f"benchmark {spec.name} read question id {item.id!r} twice from {path}",
                hint="each question needs its own id; the data or the benchmark plugin is at fault",
            )
        seen.add(item.id)
    return items[:limit] if limit is not None else items


def check_modalities(
    spec: BenchmarkSpec, items: Sequence[BenchmarkItem], model: str, modalities: Sequence[str]
) -> None:
    """A UsageError unless the model has every modality the questions' files are of."""
    needed = sorted({modality for item in items for modality, _ in item.media})
    missing = [modality for modality in needed if modality not in modalities]
    if missing:
        raise UsageError(
            f"benchmark {spec.name} asks about {', '.join(missing)} input(s), which model {model} has no "
            f"modality for (it has {', '.join(modalities) or 'none'})",
            hint="choose a model with that modality, or install its plugin and add it to the config",
        )


@dataclass(frozen=True)
class BenchmarkRun:
    """A benchmark run about to start in ``folder``: the questions, and what an earlier run into
    the same folder answered already."""

    spec: BenchmarkSpec
    items: tuple[BenchmarkItem, ...]
    folder: Path
    header: dict[str, str]
    earlier: Appended

    @property
    def todo(self) -> list[BenchmarkItem]:
        return [item for item in self.items if item.id not in self.earlier.lines]

    @property
    def predictions(self) -> Path:
        return self.folder / PREDICTIONS_FILE


def plan_run(
    spec: BenchmarkSpec,
    items: Sequence[BenchmarkItem],
    folder: str | Path,
    header: dict[str, str],
    fresh: bool = False,
) -> BenchmarkRun:
    """Check the output folder, and find what an earlier run left in it to go on from (nothing with
    ``fresh``, which clears the folder's run files first). ``header`` says what the run is of
    (benchmark, model, data); a folder holding another run's predictions is refused."""
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise UsageError(f"the output {target} is a file, not a folder", hint="give --output a folder")
    if fresh:
        for name in (RUN_FILE, PREDICTIONS_FILE, METRICS_FILE):
            (target / name).unlink(missing_ok=True)
    restart = "use another --output folder, or --fresh to start this one over"
    recorded = _read_header(target / RUN_FILE)
    if recorded is not None and recorded != header:
        different = ", ".join(
            f"{key} {recorded.get(key)!r} (now {header.get(key)!r})"
            for key in sorted(set(header) | set(recorded))
            if recorded.get(key) != header.get(key)
        )
        raise UsageError(f"{target} holds predictions of another run: {different}", hint=restart)
    earlier = read_appended(target / PREDICTIONS_FILE, "id", "a prediction line", "anymodal eval", restart)
    ids = {item.id for item in items}
    foreign = [key for key in earlier.lines if key not in ids]
    if foreign and recorded is not None:
        shown = ", ".join(repr(key) for key in foreign[:3]) + (", ..." * (len(foreign) > 3))
        raise UsageError(
            f"{earlier.path} holds {len(foreign)} prediction(s) for questions the data no longer has "
            f"({shown}): the data changed since that run",
            hint=restart,
        )
    return BenchmarkRun(spec, tuple(items), target, header, earlier)


def run_benchmark(
    run: BenchmarkRun,
    session: ChatSession | None,
    max_batch: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Ask every question not yet answered, appending each reply to the predictions as it ends,
    then score every answered question and write ``metrics.json``; returns what it wrote.
    ``progress(done, total)`` follows each question, those answered before counted as done.
    ``session`` may be None only when every question was answered before."""
    if run.todo and session is None:
        raise ValueError("a ChatSession is needed to answer the questions left")
    run.folder.mkdir(parents=True, exist_ok=True)
    write_json(run.folder / RUN_FILE, run.header)
    replies = {key: str(line["reply"]) for key, line in run.earlier.lines.items()}
    failed: dict[str, str] = {}
    groups = _grouped(run.todo)
    total, done = len(run.items), len(run.items) - len(run.todo)

    def skip(number: int, error: str) -> None:
        nonlocal done
        for item in groups[number]:
            failed[item.id] = error
        done += len(groups[number])

    questions = [Questions(group[0].media, [item.question for item in group]) for group in groups]
    with open_appended(run.earlier) as write:
        asked = ask_groups(session, questions, max_batch, skip) if session is not None else iter(())
        for number, index, reply in asked:
            item = groups[number][index]
            write(_prediction(item, reply))
            replies[item.id] = reply
            done += 1
            if progress is not None:
                progress(done, total)
    return write_metrics(run, replies, failed)


def write_metrics(run: BenchmarkRun, replies: dict[str, str], failed: dict[str, str]) -> dict[str, Any]:
    """Score the answered questions (in the data's order) and write ``metrics.json``."""
    answered = [item for item in run.items if item.id in replies]
    if not answered:
        first = next(iter(failed.values()), "no question was asked")
        raise UsageError(
            f"no {run.spec.name} question could be asked: the files of all {len(run.items)} failed to load "
            f"(the first: {first})",
            hint="check that the benchmark's media are where --data says; see docs/evaluation.md",
        )
    metrics = {
        **run.header,
        "questions": len(run.items),
        "answered": len(answered),
        "failed": [{"id": key, "error": error} for key, error in failed.items()],
        "scores": run.spec.score(answered, [replies[item.id] for item in answered]),
    }
    write_json(run.folder / METRICS_FILE, metrics)
    return metrics


def score_lines(scores: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """``name  value`` for every number in ``scores`` (nested names joined by dots), for people."""
    for name, value in scores.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            yield from score_lines(value, f"{key}.")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            continue
        else:
            yield f"{key:<40} {value:.4f}" if isinstance(value, float) else f"{key:<40} {value}"


def _grouped(items: Sequence[BenchmarkItem]) -> list[list[BenchmarkItem]]:
    """Consecutive questions about the same files, together: their files are read and encoded once."""
    groups: list[list[BenchmarkItem]] = []
    for item in items:
        if groups and groups[-1][0].media == item.media:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _prediction(item: BenchmarkItem, reply: str) -> dict[str, Any]:
    return {
        "id": item.id,
        "question": item.question,
        "media": [[modality, str(path)] for modality, path in item.media],
        "reply": reply,
        "fields": dict(item.fields),
    }


def _read_header(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict):
        raise UsageError(
            f"{path} is not a run file anymodal eval wrote", hint="use another --output folder, or --fresh"
        )
    return {str(key): str(value) for key, value in header.items()}


__all__ = [
    "METRICS_FILE",
    "PREDICTIONS_FILE",
    "RUN_FILE",
    "BenchmarkRun",
    "check_modalities",
    "plan_run",
    "read_items",
    "run_benchmark",
    "score_lines",
    "write_metrics",
]
