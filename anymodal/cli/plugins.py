"""``anymodal plugins``: what is installed, what each plugin registered, and why one failed."""

from __future__ import annotations

import json

import click

from anymodal.contract.registry import get_registry


def plugins() -> click.Command:
    @click.command("plugins")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    def command(as_json: bool) -> None:
        """List installed plugins, what they register, and errors."""
        registry = get_registry()
        if as_json:
            click.echo(json.dumps([record.as_dict() for record in registry.plugins], indent=2))
            return
        for record in registry.plugins:
            click.echo(f"{record.label}  [{record.name}]  {record.status}")
            for kind, names in record.registered.items():
                heading = "modalities" if kind == "modality" else f"{kind}s"
                click.echo(f"    {heading}: {', '.join(names)}")
            if record.error:
                click.echo(f"    error: {record.error}")
        if registry.failed:
            click.echo(
                f"{len(registry.failed)} plugin(s) failed to load; fix them, uninstall them "
                "(`anymodal uninstall <distribution>`), or skip them with ANYMODAL_DISABLE_PLUGINS=<name>",
                err=True,
            )

    return command
