"""The ``anymodal`` command. Errors are one line with a next step; ``--debug`` shows tracebacks.

Exit codes: 0 ok, 1 runtime error, 2 usage error.

May import: contract, files, preprocess, anymodal, config, encoders, projectors, runtime, models,
scaffold, train, bind, data, eval, serve, demo, testing.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click

from anymodal import __version__
from anymodal.contract.errors import AnymodalError

#: Commands whose modules are imported only when used, so `anymodal --help` stays fast.
COMMANDS = {
    "batch": (
        "anymodal.cli.batch",
        "batch",
        "Answer a file of OpenAI batch requests in this process, as serve would (resumable).",
    ),
    "chat": ("anymodal.cli.chat", "chat", "Chat with a model about files of any installed modality."),
    "plugins": ("anymodal.cli.plugins", "plugins", "List installed plugins, what they register, and errors."),
    "install": ("anymodal.cli.install", "install", "Install plugins with pip, into anymodal's environment."),
    "uninstall": ("anymodal.cli.install", "uninstall", "Uninstall plugins with pip, even broken ones."),
    "config": ("anymodal.cli.config", "config", "Show or validate a configuration."),
    "convert": (
        "anymodal.cli.convert",
        "convert",
        "Turn released weights of other projects (PandaGPT) into anymodal models.",
    ),
    "data": (
        "anymodal.cli.data",
        "data",
        "Generate instruction data with a teacher LLM from annotations; check a data file.",
    ),
    "demo-data": (
        "anymodal.cli.demo",
        "demo_data",
        "Write the synthetic demo world: media files and conversations.",
    ),
    "new-plugin": (
        "anymodal.cli.new_plugin",
        "new_plugin",
        "Start a modality plugin: loader, encoder, tests, README.",
    ),
    "export": (
        "anymodal.cli.export",
        "export",
        "Merge a model's LoRA into its LLM and write plain model files.",
    ),
    "bind": (
        "anymodal.cli.bind",
        "bind",
        "Teach an encoder another modality's embedding space from paired samples (ImageBind's way).",
    ),
    "doctor": (
        "anymodal.cli.doctor",
        "doctor",
        "Check the environment (torch, GPUs, libraries, plugins) and a model's needs.",
    ),
    "embed": ("anymodal.cli.embed", "embed", "Write encoder embeddings of files (ImageBind space)."),
    "eval": (
        "anymodal.cli.eval",
        "eval_command",
        "Accuracy on conversations, or a public benchmark scored by its official rules.",
    ),
    "pull": (
        "anymodal.cli.pull",
        "pull",
        "Download a released model's weights (PandaGPT), verify and prepare them.",
    ),
    "serve": ("anymodal.cli.serve", "serve", "Serve a model over an OpenAI-compatible HTTP API."),
    "similarity": ("anymodal.cli.embed", "similarity", "Rank files of one modality against another."),
    "train": (
        "anymodal.cli.train",
        "train",
        "Train projectors (stage 1) and LoRA (stage 2) on conversations.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        module = __import__(module_name, fromlist=[attribute])
        command: click.Command = getattr(module, attribute)()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in sorted(COMMANDS)])


class AnymodalGroup(LazyGroup):
    """Turns every error into one line and an exit code, for the console script and CliRunner alike."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        argv = list(sys.argv[1:] if args is None else args)
        code = _run(
            lambda: super(AnymodalGroup, self).main(
                argv, prog_name or "anymodal", complete_var, False, **extra
            ),
            argv,
        )
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=AnymodalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="anymodal")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """anymodal: any modality into a large language model."""


def _debug_requested(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("ANYMODAL_DEBUG", "") not in ("", "0")


def _run(invoke: Callable[[], Any], argv: Sequence[str]) -> int:
    debug = _debug_requested(argv)
    try:
        result = invoke()
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.Abort as error:
        if isinstance(error.__context__, KeyboardInterrupt):  # click's own name for Ctrl-C
            click.echo("interrupted", err=True)
            return 130
        click.echo("aborted", err=True)
        return 1
    except AnymodalError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {error}", err=True)
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as error:
        if debug:
            traceback.print_exc()
        click.echo(
            f"error: unexpected {type(error).__name__}: {error} (run with --debug for the traceback)",
            err=True,
        )
        return 1
    # click returns the exit code of --help/--version (its Exit) when not standalone
    return result if isinstance(result, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    return cli.main(argv, standalone_mode=False)


def run() -> None:
    """Console-script entry point."""
    # Registered first, so it runs last: the interpreter's final garbage collections then skip the
    # objects torch and transformers leave behind, which took about a second of every command's
    # exit (benchmarks/first_answer.py). Every other exit handler still runs.
    atexit.register(_freeze_heap_at_exit)
    cli.main()


def _freeze_heap_at_exit() -> None:
    gc.freeze()
    if "triton" in sys.modules:
        # torch imports triton when it is installed (CUDA builds and openai-whisper install it).
        # triton is a nanobind extension, and nanobind reports every object of its own that the
        # skipped collections leave alive: dozens of "leaked instance" lines after each command.
        # Nothing of ours is written after this handler, so the rest of shutdown goes unheard.
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
