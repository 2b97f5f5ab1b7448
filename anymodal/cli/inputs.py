"""One ``--<modality> FILE`` option per registered modality, shared by chat, embed and similarity."""

from __future__ import annotations

from collections.abc import Mapping

import click

from anymodal.contract.registry import Registry

PREFIX = "input_"


def modality_options(registry: Registry, reserved: set[str]) -> list[click.Parameter]:
    """Repeatable file options, generated from what is registered (a new plugin's flag appears with
    no change to core). A modality whose flag collides with one of the command's own gets none."""
    return [
        click.Option(
            [spec.flag, f"{PREFIX}{name}"],  # a bare word is the parameter's name
            multiple=True,
            metavar="FILE",
            help=f"{spec.description or name} ({', '.join(spec.file_kinds)}); repeatable.",
        )
        for name, spec in sorted(registry.modalities.items())
        if spec.flag not in reserved
    ]


def given_files(options: Mapping[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """``(modality, path)`` for every file given through the generated options."""
    return [
        (name.removeprefix(PREFIX), path)
        for name, paths in options.items()
        if name.startswith(PREFIX)
        for path in paths
    ]
