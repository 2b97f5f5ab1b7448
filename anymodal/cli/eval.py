"""``anymodal eval [MODEL] --data DIR``: accuracy per modality and question kind, as a table and JSON;
``anymodal eval [MODEL] --benchmark NAME --data PATH``: a public benchmark, scored by its official
rules (:mod:`anymodal.eval.benchmark`), its predictions and metrics in a folder a rerun resumes.

MODEL is what ``anymodal chat --model`` takes (preset, model or checkpoint directory, YAML file),
loaded the same way; decoding is greedy unless ``--set generation.do_sample=true`` says otherwise.
The data is checked before the model loads, so a bad path or record costs no model load.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from anymodal.cli.notes import show_model_notes
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import Registry, get_registry
from anymodal.contract.wording import plural

DEFAULT_OUTPUT = "eval.json"
#: A benchmark's output folder, unless --output names one.
DEFAULT_BENCHMARK_OUTPUT = "eval-{name}"


def eval_command() -> click.Command:
    @click.command("eval")
    @click.argument("model_source", metavar="[MODEL]", required=False)
    @click.option(
        "--data",
        required=True,
        metavar="DIR|FILE",
        help="Directory with conversations.jsonl, or the file; with --benchmark, the benchmark's files.",
    )
    @click.option(
        "--benchmark",
        metavar="NAME",
        help="A public benchmark to score by its official rules (pope, scienceqa, mme, clotho, "
        "audiocaps, or a plugin's; `anymodal plugins` lists them).",
    )
    @click.option(
        "--output",
        metavar="PATH",
        help=f"Where to write the JSON results [default: {DEFAULT_OUTPUT}]; with --benchmark, the folder "
        "for predictions and metrics, which a rerun resumes "
        f"[default: {DEFAULT_BENCHMARK_OUTPUT.format(name='NAME')}].",
    )
    @click.option(
        "--fresh", is_flag=True, help="With --benchmark: start over, clearing the output folder's run."
    )
    @click.option(
        "--limit",
        type=click.IntRange(min=1),
        metavar="N",
        help="Only the first N records (of those --modality selects); with --benchmark, N questions.",
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
        benchmark: str | None,
        output: str | None,
        fresh: bool,
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
        if benchmark is not None:
            if modalities:
                raise UsageError("--modality is for conversations; a benchmark is asked whole (or --limit N)")
            _benchmark(registry, model_source, benchmark, data, output, fresh, limit, [*overrides, *extra])
            return
        if fresh:
            raise UsageError("--fresh is for --benchmark runs; a conversation eval always starts over")
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
        written = write_json(output or DEFAULT_OUTPUT, report_dict(loaded.source, dataset, run))
        click.echo(f"wrote {written}", err=True)

    return command


def _benchmark(
    registry: Registry,
    model_source: str | None,
    name: str,
    data: str,
    output: str | None,
    fresh: bool,
    limit: int | None,
    overrides: list[str],
) -> None:
    """``anymodal eval --benchmark NAME``: the questions read and the output folder checked before
    the model loads; the benchmark's reply length unless the user set one."""
    from pathlib import Path

    from anymodal.config.load import load_config
    from anymodal.eval.benchmark import check_modalities, plan_run, read_items, run_benchmark, score_lines
    from anymodal.eval.run import GREEDY
    from anymodal.runtime.chat import ChatSession

    spec = registry.get("benchmark", name)
    items = read_items(spec, data, limit)
    length = [] if spec.max_new_tokens is None else [f"generation.max_new_tokens={spec.max_new_tokens}"]
    loaded = load_config(model_source, [GREEDY, *length, *overrides], registry)
    check_modalities(spec, items, loaded.source, list(loaded.config.model.modalities))
    header = {"benchmark": spec.name, "model": loaded.source, "data": str(Path(data).resolve())}
    if limit is not None:
        header["limit"] = str(limit)
    run = plan_run(spec, items, output or DEFAULT_BENCHMARK_OUTPUT.format(name=spec.name), header, fresh)
    show_model_notes(loaded)
    before = len(items) - len(run.todo)
    resumed = f", {before} answered before" if before else ""
    click.echo(
        f"evaluating {loaded.source} on {spec.name}: {plural(len(items), 'question')}{resumed}", err=True
    )
    session = ChatSession.from_config(loaded.config, registry) if run.todo else None
    metrics = run_benchmark(run, session, loaded.config.generation.max_batch, _progress_lines("questions"))
    for failure in metrics["failed"]:
        click.echo(f"skipped {failure['id']}: {failure['error']}", err=True)
    click.echo("\n".join(score_lines(metrics["scores"])))
    click.echo(f"wrote {run.folder}", err=True)


def _progress_lines(unit: str = "items", steps: int = 10) -> Callable[[int, int], None]:
    """A progress callback printing a line to stderr each time another 1/``steps`` of ``unit`` is done."""
    shown = 0

    def progress(done: int, total: int) -> None:
        nonlocal shown
        step = done * steps // total
        if step > shown or done == total:
            shown = step
            click.echo(f"  {done}/{total} {unit} ({100 * done // total}%)", err=True)

    return progress
