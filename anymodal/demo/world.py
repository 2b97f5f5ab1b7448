"""The demo world on disk: media files, the conversations about them, and a description of it all.

``generate_world(out_dir, n, seed)`` writes, per modality, ``n`` files
``<modality>/<index:05d>.<ext>``, one conversation record per file in ``conversations.jsonl``
(LLaVA style, read by ``anymodal train``), and ``world.json``. A record looks like::

    {"id": "image-00017", "image": "image/00017.png",
     "conversations": [{"from": "human", "value": "<image>\\nWhat colour is the shape?"},
                       {"from": "gpt", "value": "The shape is red."}],
     "meta": {"modality": "image", "attributes": {"shape": "circle", "colour": "red", ...},
              "render": {...nuisance parameters...},
              "turns": [{"kind": "colour", "checks": {"colour": {"expect": ["red"], "reject": [...]}}}]}}

``meta.turns[i]`` belongs to the i-th answer; :func:`judge` scores a reply against its checks.

Reproducible to the byte: file ``i`` of modality ``m`` is drawn from its own generator,
``np.random.default_rng([seed, m's index in MODALITIES, i])`` (its conversation from a child of the
same seed), and the attribute schedule from another per modality, so a file does not depend on the
order of work, on the number of workers, on the other modalities or on ``n`` (a world of 12 files
is a prefix of one of 1000). Large worlds are written by a small process pool.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from anymodal.contract.errors import UsageError
from anymodal.contract.wording import did_you_mean
from anymodal.demo.language import KINDS, answer, make_conversation
from anymodal.demo.multi import make_multi_records, multi_kinds
from anymodal.demo.render import render
from anymodal.demo.schedule import balanced_schedule
from anymodal.demo.vocabulary import ATTRIBUTES, EXTENSIONS, MODALITIES
from anymodal.eval.scoring import judge_reply as judge

__all__ = [
    "ATTRIBUTES",
    "CONVERSATIONS_FILE",
    "GENERATOR_VERSION",
    "KINDS",
    "MODALITIES",
    "WORLD_FILE",
    "answer",
    "generate_world",
    "judge",
    "make_record",
    "media_path",
]

#: Bumped whenever the same (n, seed, modalities) would give different files.
GENERATOR_VERSION = 1
CONVERSATIONS_FILE = "conversations.jsonl"
WORLD_FILE = "world.json"
#: Worlds of at least this many files are written by a process pool.
PARALLEL_FROM = 120
DEFAULT_WORKERS = 2
#: Third seed word of the schedule's generator; item indices stay below it, so the streams differ.
_SCHEDULE_STREAM = 2**32 - 1


def media_path(modality: str, index: int) -> str:
    """Where file ``index`` of ``modality`` lives, relative to the world's folder (forward slashes)."""
    return f"{modality}/{index:05d}.{EXTENSIONS[modality]}"


def item_generators(seed: int, modality: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The generators of one file: (drawing it, talking about it), both from ``[seed, modality, index]``."""
    key = [seed, MODALITIES.index(modality), index]
    talk = np.random.SeedSequence(key, spawn_key=(1,))
    return np.random.default_rng(key), np.random.default_rng(talk)


def make_record(
    out_dir: Path, modality: str, index: int, attributes: Mapping[str, str], seed: int
) -> dict[str, Any]:
    """Write file ``index`` of ``modality`` under ``out_dir`` and return its conversation record."""
    drawing, talking = item_generators(seed, modality, index)
    relative = media_path(modality, index)
    params = render(modality, attributes, drawing, out_dir / relative)
    conversations, turns = make_conversation(modality, attributes, talking)
    return {
        "id": f"{modality}-{index:05d}",
        modality: relative,
        "conversations": conversations,
        "meta": {"modality": modality, "attributes": dict(attributes), "render": params, "turns": turns},
    }


def generate_world(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    modalities: Sequence[str] | None = None,
    *,
    overwrite: bool = False,
    workers: int | None = None,
    multi: int = 0,
) -> dict[str, Any]:
    """Write the demo world to ``out_dir`` and return what ``world.json`` holds.

    n: files per modality; modalities: some of :data:`MODALITIES` (default all; always written in
    that order). ``out_dir`` must be empty or missing; with ``overwrite`` the files of an earlier
    run there are removed first, and nothing else is. workers: processes (default: 2 for large
    worlds, none for small ones); the output is the same for any number. multi: two-input records
    of each kind the modalities allow (:mod:`anymodal.demo.multi`), after the others.
    """
    chosen = _chosen_modalities(modalities)
    if n < 1:
        raise UsageError(f"the number of files per modality must be at least 1, not {n}")
    if multi < 0:
        raise UsageError(f"the number of two-input records per kind must be 0 or more, not {multi}")
    if not 0 <= seed < 2**32:
        raise UsageError(f"the seed must be in 0..{2**32 - 1}, not {seed}")
    root = Path(out_dir)
    prepare_output(
        root,
        chosen,
        overwrite,
        hint="pass --overwrite to replace an earlier demo-data run there, or choose an empty one",
    )
    if "video" in chosen:
        from anymodal.demo.video import require_av

        require_av()
    jobs = [
        (str(root), modality, index, attributes, seed)
        for modality in chosen
        for index, attributes in enumerate(_schedule(modality, n, seed))
    ]
    records = _run(jobs, workers)
    records += make_multi_records(records, multi, seed, chosen)
    with open(root / CONVERSATIONS_FILE, "w", encoding="utf-8", newline="\n") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
    world = _describe(records, n, seed, chosen)
    if multi:
        world["counts"]["multi"] = _multi_counts(records, chosen)
    (root / WORLD_FILE).write_text(json.dumps(world, indent=2) + "\n", encoding="utf-8")
    return world


def remove_previous(out_dir: Path) -> None:
    """Remove what an earlier run wrote to ``out_dir``: its two files and, in each modality folder,
    the numbered media files (a folder goes too once empty). Anything else stays."""
    for name in (CONVERSATIONS_FILE, WORLD_FILE):
        (out_dir / name).unlink(missing_ok=True)
    for modality in MODALITIES:
        folder = out_dir / modality
        if not folder.is_dir():
            continue
        numbered = re.compile(rf"\d{{5,}}\.{EXTENSIONS[modality]}")
        for entry in folder.iterdir():
            if entry.is_file() and numbered.fullmatch(entry.name):
                entry.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


def _chosen_modalities(modalities: Iterable[str] | None) -> list[str]:
    return chosen_names(MODALITIES if modalities is None else modalities, MODALITIES, "demo modality")


def chosen_names(wanted: Iterable[str], known: Sequence[str], noun: str) -> list[str]:
    """``wanted`` (a name, or names, of ``known``) in ``known``'s order; an unknown name or none
    at all is a UsageError calling them ``noun``."""
    names = [wanted] if isinstance(wanted, str) else list(wanted)  # one name, not its letters
    for name in names:
        if name not in known:
            raise UsageError(
                f"unknown {noun} {name!r}{did_you_mean(name, known)}",
                hint=f"choose from {', '.join(known)}",
            )
    if not names:
        raise UsageError(f"no {noun.split()[-1]} chosen", hint=f"choose from {', '.join(known)}")
    return [name for name in known if name in names]


def prepare_output(
    root: Path, folders: Sequence[str], overwrite: bool = False, hint: str | None = None
) -> None:
    """Make ``root`` and its ``folders``: an empty directory or a new one; a directory holding
    files is refused (``hint`` says what to do), unless ``overwrite`` removes an earlier
    ``demo-data`` run's files first."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"output path {root} is a file, not a directory", hint="choose a directory")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise UsageError(
                f"output directory {root} is not empty", hint=hint or "choose an empty or a new one"
            )
        remove_previous(root)
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)


def _schedule(modality: str, n: int, seed: int) -> list[dict[str, str]]:
    rng = np.random.default_rng([seed, MODALITIES.index(modality), _SCHEDULE_STREAM])
    return balanced_schedule(ATTRIBUTES[modality], n, rng)


Job = tuple[str, str, int, dict[str, str], int]


def _run(jobs: Sequence[Job], workers: int | None) -> list[dict[str, Any]]:
    """The record of every job, in job order, written here or by a pool of ``workers`` processes."""
    if workers is None:
        workers = min(DEFAULT_WORKERS, os.cpu_count() or 1) if len(jobs) >= PARALLEL_FROM else 1
    if workers <= 1:
        return [_make(job) for job in jobs]
    # spawn, not fork: the caller may hold threads (torch, a test runner), which fork does not copy.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(_make, jobs, chunksize=max(1, len(jobs) // (workers * 24))))


def _make(job: Job) -> dict[str, Any]:
    out_dir, modality, index, attributes, seed = job
    return make_record(Path(out_dir), modality, index, attributes, seed)


def _describe(
    records: Sequence[Mapping[str, Any]], n: int, seed: int, modalities: Sequence[str]
) -> dict[str, Any]:
    """``world.json``: how it was made, its vocabulary, and what it holds. No timings, so that the
    same world is the same file."""
    per_modality: dict[str, Any] = {}
    single = [record for record in records if "sources" not in record["meta"]]
    for modality in modalities:
        mine = [record["meta"] for record in single if record["meta"]["modality"] == modality]
        turns = [turn for meta in mine for turn in meta["turns"]]
        per_modality[modality] = {
            "files": len(mine),
            "turns": len(turns),
            "classes": {
                attribute: {
                    cls: sum(meta["attributes"][attribute] == cls for meta in mine) for cls in classes
                }
                for attribute, classes in ATTRIBUTES[modality].items()
            },
            "kinds": {kind: sum(turn["kind"] == kind for turn in turns) for kind in KINDS[modality]},
            "yes_no": dict(sorted(Counter(turn["yes_no"] for turn in turns if "yes_no" in turn).items())),
        }
    return {
        "generator": "anymodal demo-data",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n": n,
        "modalities": list(modalities),
        "media": {modality: EXTENSIONS[modality] for modality in modalities},
        "attributes": {
            modality: {a: list(c) for a, c in ATTRIBUTES[modality].items()} for modality in modalities
        },
        "kinds": {modality: list(KINDS[modality]) for modality in modalities},
        "counts": {
            "files": len(single),
            "records": len(records),
            "turns": sum(len(record["meta"]["turns"]) for record in records),
            "per_modality": per_modality,
        },
    }


def _multi_counts(records: Sequence[Mapping[str, Any]], modalities: Sequence[str]) -> dict[str, int]:
    """``"<inputs> <kind>"`` -> the two-input records of that kind."""
    kinds = Counter(
        f"{record['meta']['modality']} {record['meta']['turns'][0]['kind']}"
        for record in records
        if "sources" in record["meta"]
    )
    return {
        f"{kind.label} {kind.name}": kinds[f"{kind.label} {kind.name}"] for kind in multi_kinds(modalities)
    }
