"""``anymodal doctor [MODEL]``: the environment, and what a model needs of it."""

from __future__ import annotations

import click


def doctor() -> click.Command:
    @click.command("doctor")
    @click.argument("model", required=False)
    def command(model: str | None) -> None:
        """Print torch and CUDA (GPUs and their free memory), the libraries anymodal uses, its
        directories and every plugin's status; with MODEL, the files it lacks and the memory its
        weights take, part by part."""
        from anymodal.config import load_config
        from anymodal.contract.registry import get_registry
        from anymodal.models import doctor as report

        registry = get_registry()
        for line in report.environment_lines(registry):
            click.echo(line)
        if model is not None:
            for line in report.memory_lines(load_config(model, registry=registry), registry):
                click.echo(line)

    return command
