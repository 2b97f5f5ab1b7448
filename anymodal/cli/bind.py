"""``anymodal bind CONFIG [key=value ...] [--resume [DIR]] [--dry-run]``: train a modality's encoder
so that its embeddings land in another modality's space (see :mod:`anymodal.bind.binder`).

One process by default; for several GPUs launch it through accelerate
(``accelerate launch -m anymodal bind CONFIG``) or torchrun, as ``anymodal train``.
"""

from __future__ import annotations

import click

from anymodal.cli.train import run_arguments
from anymodal.config import load_config
from anymodal.contract.registry import get_registry


def bind() -> click.Command:
    @click.command("bind")
    @run_arguments
    @click.option(
        "--dry-run", is_flag=True, help="Check the config and the pairs, say what would train, and exit."
    )
    def command(source: str, overrides: tuple[str, ...], resume: str | None, dry_run: bool) -> None:
        """Bind a modality's encoder to another's embeddings (bind.modality to bind.target) with
        paired samples (bind.data), ImageBind's way. CONFIG: YAML file or model directory."""
        from anymodal.bind.binder import Binder

        registry = get_registry()
        loaded = load_config(source, overrides, registry)

        def log(text: str) -> None:
            click.echo(text, err=True)

        binder = Binder(loaded, registry, resume=resume, log=log)
        if dry_run:
            click.echo(binder.describe())
            return
        try:
            result = binder.fit()
        finally:
            binder.accelerator.end_training()
        if result.evaluation is not None:
            shown = ", ".join(f"{name} {value:.3f}" for name, value in result.evaluation.items())
            click.echo(f"held out: {shown}")
        click.echo(f"bound in {result.step} step(s); checkpoint: {result.last_checkpoint}")

    return command
