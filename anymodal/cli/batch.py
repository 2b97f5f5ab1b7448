"""``anymodal batch IN.jsonl -o OUT.jsonl``: a file of requests in the OpenAI Batch API's format,
answered in this process as ``anymodal serve`` would answer them (see docs/batch.md).

Requests may name files under the input file's folder (and ``--allow-path`` folders); a relative
path is read from the current folder, as the server reads it. The input and output are checked
before the model loads (it does not load when every request is answered already); a progress bar
goes to stderr when it is a terminal; at the end a one-line summary goes to stderr, or with
``--json`` one JSON object to stdout. Ctrl-C stops the run after the lines written so far, and the
same command goes on from there. FastAPI is not needed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import click

from anymodal.cli.serve import load_model_config, media_options, model_options, serve_options, start_model
from anymodal.serve import batch as batch_run
from anymodal.serve.batch import is_success


def batch() -> click.Command:
    @click.command("batch")
    @click.argument("input_file", metavar="IN.jsonl", type=click.Path(path_type=Path))
    @click.option(
        "-o",
        "--output",
        required=True,
        metavar="OUT.jsonl",
        type=click.Path(path_type=Path),
        help="Where the results go, one line per request; a rerun skips the requests it holds.",
    )
    @model_options()
    @media_options(
        allow_path_help="Let requests name files (paths, file:// URLs) under DIR too, besides the "
        "input file's folder; repeatable.",
        max_request_help="Largest request line, and largest fetched URL, in MB.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout at the end.")
    def command(
        input_file: Path,
        output: Path,
        model_source: str | None,
        overrides: tuple[str, ...],
        allow_paths: tuple[str, ...],
        allow_remote: bool,
        max_request_mb: float,
        as_json: bool,
    ) -> None:
        """Answer a file of OpenAI batch requests (chat completions, embeddings)."""
        plan = batch_run.plan(input_file, output)
        registry, loaded = load_model_config(model_source, overrides)
        if plan.cut_bytes:
            click.echo(
                f"note: cut a half-written last line ({plan.cut_bytes} bytes) off {output}; its "
                "request runs again",
                err=True,
            )
        service = None
        if plan.todo:
            from anymodal.serve.service import Service

            session = start_model(registry, loaded)
            options = serve_options(loaded, (input_file.parent, *allow_paths), allow_remote, max_request_mb)
            service = Service(session, registry, options)
        bar = ProgressBar(len(plan.lines), len(plan.lines) - len(plan.todo), sys.stderr)
        try:
            summary = batch_run.run(plan, service, bar.update)
        except KeyboardInterrupt:
            bar.close()
            click.echo(
                f"anymodal batch: stopped; the lines written so far stay in {output}, and the same "
                "command goes on from there",
                err=True,
            )
            raise
        finally:
            bar.close()
            if service is not None:
                service.thread.shutdown()
        if as_json:
            click.echo(json.dumps(summary.as_dict()))
        else:
            click.echo(summary.line(), err=True)

    return command


class ProgressBar:
    """A tqdm bar on ``stream`` counting output lines (and the failed ones), or nothing at all when
    ``stream`` is not a terminal or tqdm is missing (it comes with transformers)."""

    def __init__(self, total: int, done: int, stream: IO[str]) -> None:
        self.failed = 0
        self.bar: Any = None
        if not stream.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(
            total=total, initial=done, unit="line", desc="anymodal batch", file=stream, dynamic_ncols=True
        )

    def update(self, record: Mapping[str, Any]) -> None:
        if self.bar is None:
            return
        if not is_success(record):
            self.failed += 1
            self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
