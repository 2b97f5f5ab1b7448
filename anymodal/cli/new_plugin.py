"""``anymodal new-plugin NAME``: start a modality plugin that installs and passes its tests as written."""

from __future__ import annotations

from pathlib import Path

import click

from anymodal.cli.outputs import output_directory
from anymodal.contract.errors import UsageError
from anymodal.scaffold.project import create_plugin, plugin_names


def new_plugin() -> click.Command:
    @click.command("new-plugin")
    @click.argument("name")
    @output_directory(required=False, help="Directory to create (default: ./anymodal-NAME).")
    @click.option("--description", help="One line on what the modality is (shown in chat --help).")
    def command(name: str, output: Path | None, description: str | None) -> None:
        """Write a new modality plugin NAME: pyproject.toml with its entry point, a loader, an
        example encoder, tests wired to anymodal's conformance suite, and a README."""
        names = plugin_names(name, description)
        _check_unregistered(name)
        directory = output or Path(names.distribution)
        for path in create_plugin(names, directory):
            click.echo(f"created {path}")
        shown = directory if directory.is_absolute() else f"./{directory}"  # pip reads ./x as a path
        click.echo(
            f"\nnext:\n"
            f"  anymodal install -e '{shown}[test]'   # pip install -e, into anymodal's environment\n"
            f"  cd {shown} && pytest             # its tests, the conformance suite among them\n"
            f"  anymodal chat --model MODEL {names.flag} scan.npy 'What is this?'\n"
            f"then replace the example loader and encoder with your sensor's: see {shown}/README.md",
            err=True,
        )

    return command


def _check_unregistered(name: str) -> None:
    from anymodal.contract.registry import get_registry

    owner = get_registry().owners.get(("modality", name))
    if owner is not None:
        raise UsageError(
            f"modality {name!r} is already registered by {owner.label}",
            hint="choose another name; two plugins cannot register one modality",
        )
