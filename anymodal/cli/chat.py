"""``anymodal chat``: one flag per installed modality, generated from the registry.

With a PROMPT it answers once and exits. Without one it is an interactive chat: ``/<modality>
FILE`` attaches a file to the next message (``/embedding MODALITY FILE`` an encoder output saved
as a tensor, as ``--embedding MODALITY=FILE`` does), ``/reset`` clears the history, ``/quit`` leaves.
Ctrl-C stops a reply, not the chat; no error ends the chat or loses its history. A script piped
in (``anymodal chat < session.txt``, one message or command per line) runs the same way, with
each line echoed after its prompt so the output reads as a transcript.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import click

from anymodal.cli.inputs import given_files, modality_options
from anymodal.cli.notes import show_model_notes
from anymodal.contract.errors import AnymodalError, UsageError
from anymodal.contract.registry import Registry, get_registry
from anymodal.files.inputs import check_input_file

if TYPE_CHECKING:
    from anymodal.runtime.chat import ChatSession, ChatTurn

#: Options of `chat` itself; a modality whose flag collides with one of them gets no flag.
RESERVED = {
    "--model",
    "--set",
    "--embedding",
    "--max-new-tokens",
    "--temperature",
    "--top-p",
    "--seed",
    "--help",
}

HELP_TEXT = """commands:
  /<modality> FILE   attach a file to your next message (for example /image photo.jpg)
  /embedding M FILE  attach modality M's encoder output saved in FILE (.pt or .safetensors)
  /reset             forget the conversation and any attached files
  /history           show the conversation so far
  /help              show this help
  /quit              leave (Ctrl-D also leaves; Ctrl-C stops a reply)"""


def chat() -> click.Command:
    registry = get_registry()
    params = modality_options(registry, RESERVED)

    @click.command("chat", params=params)
    @click.argument("prompt", required=False)
    @click.option(
        "--model", "model_source", metavar="PRESET|DIR", help="Preset name, YAML file or model directory."
    )
    @click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key; repeatable."
    )
    @click.option(
        "--embedding",
        "embeddings",
        multiple=True,
        metavar="MODALITY=FILE",
        help="An input given as its encoder's output (a tensor, or features/pooled, in .pt or "
        ".safetensors) instead of a file to encode; repeatable.",
    )
    @click.option("--max-new-tokens", type=int, help="Longest reply, in tokens.")
    @click.option("--temperature", type=float, help="Sampling temperature (0 = greedy).")
    @click.option("--top-p", type=float, help="Nucleus sampling threshold.")
    @click.option("--seed", type=int, help="Seed for sampling.")
    def command(
        prompt: str | None,
        model_source: str | None,
        overrides: tuple[str, ...],
        embeddings: tuple[str, ...],
        max_new_tokens: int | None,
        temperature: float | None,
        top_p: float | None,
        seed: int | None,
        **inputs: tuple[str, ...],
    ) -> None:
        """Chat with a model about files of any installed modality."""
        files = given_files(inputs)
        given = [_embedding_argument(text) for text in embeddings]
        shortcuts = {
            "generation.max_new_tokens": max_new_tokens,
            "generation.temperature": temperature,
            "generation.top_p": top_p,
            "generation.seed": seed,
        }
        extra = [f"{key}={value}" for key, value in shortcuts.items() if value is not None]
        if temperature is not None:
            extra.append(f"generation.do_sample={str(temperature > 0).lower()}")
        session = _start(registry, model_source, [*overrides, *extra], files, given)
        if prompt is not None:
            _answer(session, prompt)
        else:
            _interactive(session)

    return command


def _embedding_argument(text: str) -> tuple[str, str]:
    """``MODALITY=FILE`` as (modality, file)."""
    modality, sep, path = text.partition("=")
    if not sep or not modality.strip() or not path.strip():
        raise UsageError(
            f"--embedding {text!r}: expected MODALITY=FILE", hint="e.g. --embedding image=photo.pt"
        )
    return modality.strip(), path.strip()


def _start(
    registry: Registry,
    source: str | None,
    overrides: list[str],
    files: list[tuple[str, str]],
    embeddings: Sequence[tuple[str, str]] = (),
) -> ChatSession:
    from anymodal.config import load_config
    from anymodal.runtime.chat import ChatSession
    from anymodal.runtime.given import EMBEDDING_FILE_KINDS
    from anymodal.runtime.model import modality_not_enabled

    loaded = load_config(source, overrides, registry)
    enabled = loaded.config.model.modalities
    for modality, _ in [*files, *embeddings]:  # refuse before loading anything heavy
        if modality not in enabled:
            raise modality_not_enabled(modality, enabled, f"the model {loaded.source}")
    max_mb = loaded.config.model.max_input_mb
    for modality, path in files:
        check_input_file(path, registry.modalities[modality].file_kinds, modality=modality, max_mb=max_mb)
    for modality, path in embeddings:
        check_input_file(path, EMBEDDING_FILE_KINDS, modality=f"{modality} embedding", max_mb=max_mb)
    session = ChatSession.from_config(loaded.config, registry)
    for modality, path in files:
        session.attach(modality, path)
    for modality, path in embeddings:
        session.attach_embedding(modality, path)
    show_model_notes(loaded)  # only once the chat can start: a bad file's error stands alone
    return session


def _answer(session: ChatSession, prompt: str) -> None:
    _stream(session.ask(prompt))


def _stream(pieces: Iterator[str]) -> None:
    try:
        for piece in pieces:
            click.echo(piece, nl=False)
    finally:
        click.echo()


def _interactive(session: ChatSession) -> None:
    scripted = not sys.stdin.isatty()
    if not scripted:
        click.echo("anymodal chat: type a message, /help for commands, Ctrl-D to leave.", err=True)
    while True:
        try:
            line = click.prompt("you", prompt_suffix="> ", default="", show_default=False, err=True)
        except (EOFError, click.Abort):
            click.echo(err=True)
            return
        except KeyboardInterrupt:
            click.echo("\n(Ctrl-D or /quit leaves the chat)", err=True)
            continue
        if scripted:  # nobody typed it, so the terminal did not show it
            click.echo(line, err=True)
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("/"):
                if _command(session, line):
                    return
                continue
            pieces = session.ask(line)
            try:
                _stream(pieces)
            except KeyboardInterrupt:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
                click.echo("[reply stopped]", err=True)
        except AnymodalError as error:
            click.echo(f"error: {error}", err=True)


def _command(session: ChatSession, line: str) -> bool:
    """Run one slash command; True means leave the chat."""
    name, _, argument = line[1:].partition(" ")
    argument = argument.strip()
    if name in ("quit", "exit"):
        return True
    if name == "help":
        click.echo(HELP_TEXT, err=True)
    elif name == "reset":
        session.reset()
        click.echo("(conversation cleared)", err=True)
    elif name == "history":
        for line_text in _history_lines(session.history):
            click.echo(line_text)
    elif name == "embedding":
        modality, _, path = argument.partition(" ")
        if not path.strip():
            raise UsageError("/embedding needs a modality and a file", hint="/embedding image photo.pt")
        prepared = session.attach_embedding(modality, path.strip())
        click.echo(
            f"(attached {modality} embedding {prepared.path}; it goes with your next message)", err=True
        )
    elif name in session.model.specs:
        if not argument:
            raise UsageError(f"/{name} needs a file path", hint=f"/{name} FILE")
        prepared = session.attach(name, argument)
        click.echo(f"(attached {name} {prepared.path}; it goes with your next message)", err=True)
    else:
        known = ", ".join(f"/{m}" for m in sorted(session.model.specs))
        raise UsageError(
            f"unknown command /{name}",
            hint=f"commands: /help /reset /history /embedding /quit{', ' + known if known else ''}",
        )
    return False


def _history_lines(history: Iterable[ChatTurn]) -> Iterator[str]:
    for turn in history:
        attached = "".join(f" [{item.modality}: {item.path.name}]" for item in turn.inputs)
        yield f"you{attached}: {turn.user}"
        yield f"model: {turn.reply}{' [stopped]' if turn.interrupted else ''}"
