"""``anymodal demo-data OUT_DIR [--n N] [--seed S] [--modality M]... [--multi K] [--overwrite]``.

Writes the synthetic demo world (see :mod:`anymodal.demo.world`): N media files per modality,
``conversations.jsonl`` (with K two-input records of each kind, :mod:`anymodal.demo.multi`) and
``world.json``. The same N, seed, modalities and K give the same bytes.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from anymodal.demo.vocabulary import MODALITIES


def demo_data() -> click.Command:
    @click.command("demo-data")
    @click.argument("out_dir", metavar="OUT_DIR", type=click.Path(path_type=Path))
    @click.option(
        "--n",
        "n",
        type=click.IntRange(min=1),
        default=200,
        show_default=True,
        help="Files per modality.",
    )
    @click.option(
        "--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seed of the world."
    )
    @click.option(
        "--modality",
        "modalities",
        type=click.Choice(MODALITIES),
        multiple=True,
        help="Write only this modality; repeatable. Default: all six.",
    )
    @click.option(
        "--multi",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        metavar="K",
        help="Also K records of each two-input kind (which of two images, sound and video together, ...).",
    )
    @click.option(
        "--overwrite", is_flag=True, help="Replace the files of an earlier demo-data run in OUT_DIR."
    )
    def command(
        out_dir: Path, n: int, seed: int, modalities: tuple[str, ...], multi: int, overwrite: bool
    ) -> None:
        """Write the synthetic demo world: media files and conversations. OUT_DIR must be empty."""
        from anymodal.demo.world import generate_world

        started = time.perf_counter()
        world = generate_world(out_dir, n, seed, modalities or None, overwrite=overwrite, multi=multi)
        seconds = time.perf_counter() - started
        counts = world["counts"]
        click.echo(
            f"wrote {counts['files']} files, {counts['records']} records, {counts['turns']} turns "
            f"in {seconds:.1f} s to {out_dir}"
        )

    return command
