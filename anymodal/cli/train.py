"""``anymodal train CONFIG [key=value ...] [--resume [DIR]] [--dry-run]``.

One process by default; for several GPUs launch the same command through accelerate
(``accelerate launch -m anymodal train CONFIG``) or torchrun, and pick the strategy with
``train.distributed.strategy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from anymodal.config import load_config
from anymodal.contract.registry import get_registry

F = TypeVar("F", bound=Callable[..., Any])


def run_arguments(command: F) -> F:
    """CONFIG, the ``KEY=VALUE`` overrides and ``--resume [DIR]`` of a training-loop command
    (``train``, ``bind``)."""
    command = click.option(
        "--resume",
        is_flag=False,
        flag_value="latest",
        default=None,
        metavar="[DIR]",
        help="Continue from the latest checkpoint in train.output_dir, or from checkpoint DIR.",
    )(command)
    command = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")(command)
    return click.argument("source", metavar="CONFIG")(command)


def train() -> click.Command:
    @click.command("train")
    @run_arguments
    @click.option(
        "--dry-run",
        is_flag=True,
        help="Validate the config and data, print the trainable parameters and a memory estimate, and exit.",
    )
    def command(source: str, overrides: tuple[str, ...], resume: str | None, dry_run: bool) -> None:
        """Train projectors (stage 1) and LoRA (stage 2) on conversations. CONFIG: preset or YAML file."""
        from anymodal.train.trainer import Trainer

        registry = get_registry()
        loaded = load_config(source, overrides, registry)

        def log(text: str) -> None:
            click.echo(text, err=True)

        trainer = Trainer(loaded, registry, resume=resume, log=log)
        if dry_run:
            click.echo(trainer.data.summary())
            click.echo(trainer.describe())
            return
        try:
            result = trainer.fit()
        finally:
            # Tear the process group down before exit: left to the interpreter's shutdown, gloo's
            # threads can abort a process that finished its work ("terminate called ...").
            trainer.accelerator.end_training()
        click.echo(f"trained {result.step} step(s); checkpoint: {result.last_checkpoint}")
        click.echo(f"chat with it: anymodal chat --model {result.last_checkpoint}")

    return command
