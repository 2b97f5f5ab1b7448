"""``anymodal new-plugin NAME``: start a modality plugin that installs and passes its tests as written."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from anymodal.cli.outputs import output_directory
from anymodal.contract.errors import UsageError
from anymodal.scaffold.project import PluginNames, create_plugin, plugin_names


def new_plugin() -> click.Command:
    @click.command("new-plugin")
    @click.argument("name")
    @output_directory(required=False, help="Directory to create (default: ./anymodal-NAME).")
    @click.option("--description", help="One line on what the modality is (shown in chat --help).")
    def command(name: str, output: Path | None, description: str | None) -> None:
        """Write a new modality plugin NAME: pyproject.toml with its entry point, a loader, an
        example encoder, tests wired to anymodal's conformance suite, and a README. The example
        reads a sensor array saved as .npy; TODO comments mark what to fill in for yours."""
        names = plugin_names(name, description)
        _check_unregistered(name)
        directory = output or Path(names.distribution)
        written = create_plugin(names, directory)
        for path in written:
            click.echo(f"created {path}")
        tests = [path.relative_to(directory).as_posix() for path in written if path.parent.name == "tests"]
        click.echo(next_steps(names, directory, tests), err=True)

    return command


def next_steps(names: PluginNames, directory: Path, tests: list[str]) -> str:
    """What to run once the project is written, as commands that work from the current directory."""
    shown = str(directory) if directory.is_absolute() else f"./{directory}"  # pip reads ./x as a path
    where = shlex.quote(shown)
    return (
        f"\nnext:\n"
        f"  anymodal install -e {shlex.quote(f'{shown}[test]')}"
        f"   # pip install -e with the test extra, into anymodal's environment\n"
        f"  cd {where} && {shlex.quote(sys.executable)} -m pytest"
        f"   # its tests: {', '.join(tests)}\n"
        f"  grep -rn TODO {where}"
        f"   # what to fill in for your sensor: files, decoding, preprocessing, encoder, metadata\n"
        f"then try it untrained on the built-in demo model (chat warns that its answers are noise):\n"
        f"  anymodal chat --set {shlex.quote(f'model.modalities.{names.name}={{}}')} {names.flag} FILE.npy"
        f" 'What does this show?'\n"
        f"and teach the demo model to answer about it, with the example data and config"
        f" ({shown}/README.md has every step: bind or train, eval, serve):\n"
        f"  anymodal demo-data pictures --modality image --n 400\n"
        f"  {shlex.quote(sys.executable)} -m {names.package}.example_data data --pictures pictures\n"
        f"  anymodal train {shlex.quote(f'{shown}/configs/train.yaml')} train.data.train=data/train.jsonl"
        f" train.output_dir=runs/{names.name}\n"
        f"  anymodal chat --model runs/{names.name} {names.flag} data/recordings/00399.npy"
        " 'What shape is this?'"
    )


def _check_unregistered(name: str) -> None:
    from anymodal.contract.registry import get_registry

    owner = get_registry().owners.get(("modality", name))
    if owner is not None:
        raise UsageError(
            f"modality {name!r} is already registered by {owner.label}",
            hint="choose another name; two plugins cannot register one modality",
        )
