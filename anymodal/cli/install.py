"""``anymodal install`` / ``anymodal uninstall``: pip, run in anymodal's own environment.

A plugin is a distribution like any other, so these are pip with the right interpreter: the one
running anymodal, whatever ``pip`` happens to be first on PATH. Each NAME is passed to pip as it is
(``anymodal-speech``, ``anymodal-speech==0.2``, a path, a wheel), and so is every option after
the names (``anymodal install ./my-plugin --no-index``). Neither command loads a plugin, so both
work when every installed plugin fails to import: that is when uninstalling one is needed most.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

import click

from anymodal.contract.errors import AnymodalError, UsageError

#: Uninstalling these would take anymodal's own command away; pip can still do it.
CORE_DISTRIBUTIONS = ("anymodal",)


def install() -> click.Command:
    @click.command("install", context_settings={"ignore_unknown_options": True})
    @click.argument("names", nargs=-1, required=True, type=click.UNPROCESSED)
    def command(names: tuple[str, ...]) -> None:
        """Install plugins (NAME: anything pip install takes) into anymodal's environment.

        Options after the names go to pip, e.g. --no-index or --upgrade.
        """
        _pip("install", names)
        click.echo("done; `anymodal plugins` lists what is installed now", err=True)

    return command


def uninstall() -> click.Command:
    @click.command("uninstall", context_settings={"ignore_unknown_options": True})
    @click.argument("names", nargs=-1, required=True, type=click.UNPROCESSED)
    def command(names: tuple[str, ...]) -> None:
        """Uninstall plugins from anymodal's environment, without asking (pip uninstall -y).

        Options after the names go to pip.
        """
        core = [name for name in names if name.lower().replace("_", "-") in CORE_DISTRIBUTIONS]
        if core:
            raise UsageError(
                f"refusing to uninstall {', '.join(core)}: it is anymodal itself",
                hint=f"{sys.executable} -m pip uninstall {' '.join(core)} does it, if that is what you want",
            )
        _pip("uninstall", ("-y", *names))
        left = {name: where for name in names if (where := _installed_at(name)) is not None}
        if left:  # pip skips what lies outside its environment (on PYTHONPATH, say), and exits 0
            listed = ", ".join(f"{name} (at {where})" for name, where in left.items())
            raise AnymodalError(
                f"still installed after pip uninstall: {listed}",
                hint="remove it there by hand, or skip it with ANYMODAL_DISABLE_PLUGINS=<plugin name>",
            )

    return command


def _installed_at(name: str) -> str | None:
    """Where distribution ``name`` is installed, as this process sees it now; None if it is not."""
    if name.startswith("-"):
        return None
    try:
        found = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return str(found.locate_file(""))


def _pip(action: str, arguments: tuple[str, ...]) -> None:
    """Run ``python -m pip ACTION ARGUMENTS`` with anymodal's interpreter; pip's output is shown."""
    if importlib.util.find_spec("pip") is None:
        raise AnymodalError(
            f"pip is not installed in anymodal's environment ({sys.executable})",
            hint=f"install it with `{sys.executable} -m ensurepip`, then run this again",
        )
    command = [sys.executable, "-m", "pip", action, *arguments]
    click.echo(f"running: {' '.join(command)}", err=True)
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise AnymodalError(
            f"pip {action} failed (exit {code}); its message is above",
            hint="check the name or path, and that pip can reach an index or the files given",
        )
