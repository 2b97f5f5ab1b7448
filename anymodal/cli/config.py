"""``anymodal config show|validate [SOURCE] [key=value ...]``."""

from __future__ import annotations

import click

from anymodal.config import load_config
from anymodal.contract.registry import get_registry

SOURCE_HELP = (
    "A preset name, a YAML file, or a model directory with anymodal.yaml (default: the default model)."
)


def config() -> click.Command:
    @click.group("config")
    def group() -> None:
        """Show or validate a configuration."""

    @group.command("show")
    @click.argument("source", required=False)
    @click.argument("overrides", nargs=-1)
    def show(source: str | None, overrides: tuple[str, ...]) -> None:
        """Print the resolved configuration as YAML. SOURCE: preset, YAML file or model directory."""
        source, overrides = _split(source, overrides)
        click.echo(load_config(source, overrides, get_registry()).resolved_yaml(), nl=False)

    @group.command("validate")
    @click.argument("source", required=False)
    @click.argument("overrides", nargs=-1)
    def validate(source: str | None, overrides: tuple[str, ...]) -> None:
        """Check a configuration and report every problem at once."""
        source, overrides = _split(source, overrides)
        loaded = load_config(source, overrides, get_registry())
        click.echo(f"ok: {loaded.source} is valid")

    return group


def _split(source: str | None, overrides: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """``anymodal config show a=b`` means: the default model with override a=b."""
    if source is not None and "=" in source:
        return None, (source, *overrides)
    return source, overrides
