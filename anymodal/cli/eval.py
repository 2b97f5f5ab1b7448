"""``anymodal eval [MODEL] --data DIR``: accuracy per modality and question kind, as a table and JSON.

MODEL is what ``anymodal chat --model`` takes (preset, model or checkpoint directory, YAML file),
loaded the same way; decoding is greedy unless ``--set generation.do_sample=true`` says otherwise.
The data is checked before the model loads, so a bad path or record costs no model load.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from anymodal.cli.notes import show_model_notes
from anymodal.contract.registry import get_registry
from anymodal.contract.wording import plural

DEFAULT_OUTPUT = "eval.json"


def eval_command() -> click.Command:
    @click.command("eval")
    @click.argument("model_source", metavar="[MODEL]", required=False)
    @click.option(
        "--data", required=True, metavar="DIR|FILE", help="Directory with conversations.jsonl, or the file."
    )
    @click.option(
        "--output",
        default=DEFAULT_OUTPUT,
        show_default=True,
        metavar="PATH",
        help="Where to write the JSON results.",
    )
    @click.option(
        "--limit",
        type=click.IntRange(min=1),
        metavar="N",
        help="Only the first N records (of those --modality selects).",
    )
    @click.option(
        "--modality",
        "modalities",
        multiple=True,
        metavar="M",
        help="Only records of this modality; repeatable.",
    )
    @click.option("--max-new-tokens", type=click.IntRange(min=1), help="Longest reply, in tokens.")
    @click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key; repeatable."
    )
    def command(
        model_source: str | None,
        data: str,
        output: str,
        limit: int | None,
        modalities: tuple[str, ...],
        max_new_tokens: int | None,
        overrides: tuple[str, ...],
    ) -> None:
        """Accuracy of MODEL (a preset, model directory or YAML file, as for chat; default: the
        default model) on conversations, per modality and question kind. Each assistant turn is
        asked on its own, with the record's files attached."""
        from anymodal.eval.run import load_evaluation, report_dict, run_records, write_json
        from anymodal.eval.scoring import format_table, summarise
        from anymodal.runtime.chat import ChatSession

        registry = get_registry()
        extra = [] if max_new_tokens is None else [f"generation.max_new_tokens={max_new_tokens}"]
        loaded, dataset = load_evaluation(model_source, data, [*overrides, *extra], registry)
        if dataset.skipped:
            click.echo(f"skipping {plural(dataset.skipped, 'record')}: {dataset.report.summary()}", err=True)
        records = dataset.select(modalities, limit)
        show_model_notes(loaded)
        session = ChatSession.from_config(loaded.config, registry)
        total = sum(len(record.items) for record in records)
        items, chosen = plural(total, "item"), plural(len(records), "record")
        click.echo(f"evaluating {loaded.source} on {items} from {chosen}", err=True)
        run = run_records(
            session, records, progress=_progress_lines(), max_batch=loaded.config.generation.max_batch
        )
        for source, error in run.failed:
            click.echo(f"skipped {source}: {error}", err=True)
        click.echo(format_table(summarise(item.outcome() for item in run.scored)))
        written = write_json(output, report_dict(loaded.source, dataset, run))
        click.echo(f"wrote {written}", err=True)

    return command


def _progress_lines(steps: int = 10) -> Callable[[int, int], None]:
    """A progress callback printing a line to stderr each time another 1/``steps`` of items is done."""
    shown = 0

    def progress(done: int, total: int) -> None:
        nonlocal shown
        step = done * steps // total
        if step > shown or done == total:
            shown = step
            click.echo(f"  {done}/{total} items ({100 * done // total}%)", err=True)

    return progress
