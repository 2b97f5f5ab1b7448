"""One ``--<modality> FILE`` option per registered modality, shared by chat, embed and similarity.

A first-party modality whose plugin is missing still has its flag, hidden: given, it fails with
one line naming the pip command that brings the plugin, instead of click's "No such option".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import click

from anymodal.contract.errors import UsageError
from anymodal.contract.registry import Registry

PREFIX = "input_"

#: The first-party modality plugins: modality -> the distribution that registers it. pyproject.toml's
#: extras (anymodal[image], ..., anymodal[all]) name the same distributions; a test checks they agree.
FIRST_PARTY_MODALITIES: dict[str, str] = {
    "image": "anymodal-image",
    "video": "anymodal-video",
    "audio": "anymodal-audio",
    "depth": "anymodal-depth",
    "thermal": "anymodal-thermal",
    "imu": "anymodal-imu",
    "speech": "anymodal-speech",
}


def modality_options(registry: Registry, reserved: set[str]) -> list[click.Parameter]:
    """Repeatable file options, generated from what is registered (a new plugin's flag appears with
    no change to core). A modality whose flag collides with one of the command's own gets none.
    Each first-party modality that is not registered gets a hidden option that reports why."""
    options: list[click.Parameter] = [
        click.Option(
            [spec.flag, f"{PREFIX}{name}"],  # a bare word is the parameter's name
            multiple=True,
            metavar="FILE",
            help=f"{spec.description or name} ({', '.join(spec.file_kinds)}); repeatable.",
        )
        for name, spec in sorted(registry.modalities.items())
        if spec.flag not in reserved
    ]
    taken = reserved | {spec.flag for spec in registry.modalities.values()}
    for name in FIRST_PARTY_MODALITIES:
        flag = _flag(name)
        if name not in registry.modalities and flag not in taken:
            options.append(_missing_plugin_option(registry, name, flag))
    return options


def given_files(options: Mapping[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """``(modality, path)`` for every file given through the generated options."""
    return [
        (name.removeprefix(PREFIX), path)
        for name, paths in options.items()
        if name.startswith(PREFIX)
        for path in paths
    ]


def missing_plugin_error(registry: Registry, modality: str, flag: str | None = None) -> UsageError:
    """Why the first-party ``modality`` is not registered (not installed, disabled, or failed to
    load), with the next step: one line."""
    distribution = FIRST_PARTY_MODALITIES[modality]
    needs = f"{flag or _flag(modality)} needs the {modality} plugin"
    record = next(
        (p for p in registry.plugins if p.distribution and _canonical(p.distribution) == distribution),
        None,
    )
    if record is None:
        return UsageError(
            f"{needs}, which is not installed",
            hint=f'pip install {distribution}, or pip install "anymodal[all]" for every first-party modality',
        )
    if record.status == "disabled":
        listed = os.environ.get("ANYMODAL_DISABLE_PLUGINS", "").split(",")
        named = [n.strip() for n in listed if n.strip() in (record.name, record.distribution)]
        return UsageError(
            f"{needs} ({record.label}), which ANYMODAL_DISABLE_PLUGINS turns off",
            hint=f"take {' and '.join(named) or record.name} out of ANYMODAL_DISABLE_PLUGINS",
        )
    if record.status == "failed":
        reason = (record.error or "").splitlines()[0] if record.error else "unknown error"
        return UsageError(
            f"{needs} ({record.label}), which failed to load: {reason}",
            hint=f"`anymodal plugins` shows every plugin's state; reinstall with pip install "
            f"--force-reinstall {distribution}",
        )
    return UsageError(
        f"{needs}, but {record.label} registered no {modality!r} modality",
        hint=f"`anymodal plugins` shows what it registered; pip install --upgrade {distribution}",
    )


def _missing_plugin_option(registry: Registry, modality: str, flag: str) -> click.Option:
    def refuse(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value and not ctx.resilient_parsing:
            raise missing_plugin_error(registry, modality, flag)
        return value

    # Hidden from --help and from the command's arguments; flag_value lets a bare `--image` (no
    # FILE) reach the callback too, rather than click's "requires an argument".
    return click.Option(
        [flag, f"missing_{modality}"],
        multiple=True,
        hidden=True,
        expose_value=False,
        is_flag=False,
        flag_value="",
        callback=refuse,
        metavar="FILE",
    )


def _flag(modality: str) -> str:
    return f"--{modality.replace('_', '-')}"  # ModalitySpec's default flag


def _canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()
