"""``anymodal data generate SPEC -o OUT.jsonl``: instruction data from annotations, written by a
teacher LLM (:mod:`anymodal.data.generate`); ``anymodal data check FILE``: the trainer's validation
of a data file alone, with its statistics (:mod:`anymodal.data.check`)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from anymodal.contract.registry import get_registry


def data() -> click.Group:
    @click.group("data")
    def group() -> None:
        """Instruction data: generate it with a teacher LLM, check a file of it."""

    group.add_command(_generate())
    group.add_command(_check())
    return group


def _generate() -> click.Command:
    @click.command("generate")
    @click.argument("spec", metavar="SPEC")
    @click.option(
        "-o", "--output", required=True, metavar="OUT.jsonl", help="The training data to write (resumed)."
    )
    @click.option(
        "--teacher-url", metavar="URL", help="The teacher's OpenAI-compatible base URL, e.g. .../v1."
    )
    @click.option("--teacher-model", metavar="NAME", help="The model the teacher serves.")
    @click.option(
        "--limit", type=click.IntRange(min=1), metavar="N", help="Only the first N annotation records."
    )
    @click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec key; repeatable."
    )
    def command(
        spec: str,
        output: str,
        teacher_url: str | None,
        teacher_model: str | None,
        limit: int | None,
        overrides: tuple[str, ...],
    ) -> None:
        """Ask a teacher LLM for instruction data (LLaVA's conversation, detail and reasoning kinds,
        or the spec's own) about every annotation record of SPEC, a YAML file (docs/data.md). Every
        reply is checked and what is kept is written in the trainer's format; a rerun goes on where
        the last stopped. The key is read from the environment (teacher.key_env, OPENAI_API_KEY)."""
        from anymodal.data.generate import plan, run, teacher_settings
        from anymodal.data.spec import load_spec
        from anymodal.data.teacher import Teacher

        loaded = load_spec(spec, overrides)
        settings = teacher_settings(loaded, teacher_url, teacher_model)
        registry = get_registry()
        placeholders = {name: modality.placeholder for name, modality in registry.modalities.items()}
        planned = plan(loaded, output, placeholders, limit)
        todo = planned.todo
        done = len(planned.requests) - len(todo)
        click.echo(
            f"asking {settings.model} at {settings.url} for {len(todo)} of {len(planned.requests)} records "
            f"({', '.join(loaded.spec.kinds)}){f'; {done} done before' if done else ''}",
            err=True,
        )
        bar = _progress_bar(len(planned.requests), done)
        with Teacher(settings) as teacher:
            try:
                summary = run(
                    planned, teacher, progress=lambda *_: bar.update(1) if bar is not None else None
                )
            finally:
                if bar is not None:
                    bar.close()
        for line in summary.lines():
            click.echo(line, err=True)
        click.echo(json.dumps({"output": str(planned.output), **summary.as_dict()}))

    return command


def _check() -> click.Command:
    @click.command("check")
    @click.argument("file", metavar="FILE")
    @click.option(
        "--media-root", metavar="DIR", help="What media paths are relative to [default: FILE's folder]."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
    def command(file: str, media_root: str | None, as_json: bool) -> None:
        """Check a training data file as `anymodal train` will (every record, every media file) and
        print its statistics: records, turns, lengths, inputs per modality. Exits 1 when a record is
        invalid."""
        from pathlib import Path

        from anymodal.data.check import data_statistics, format_statistics

        registry = get_registry()
        placeholders = {name: modality.placeholder for name, modality in registry.modalities.items()}
        stats = data_statistics(Path(file), placeholders, Path(media_root) if media_root else None)
        click.echo(json.dumps(stats.to_dict(), indent=2) if as_json else format_statistics(stats))
        if stats.report.problems:
            sys.exit(1)

    return command


def _progress_bar(total: int, done: int) -> Any:
    """A tqdm bar on stderr when it is a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=done, unit="request", desc="anymodal data", file=sys.stderr, dynamic_ncols=True
    )
