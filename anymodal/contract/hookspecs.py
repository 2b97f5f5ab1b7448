"""The plugin hooks. Each hook receives a ``register`` callback and calls it once per spec.

A plugin is a module with ``ANYMODAL_CONTRACT = 1`` and any subset of these functions, each
decorated with ``@anymodal.hookimpl``. Hooks may grow new arguments; an implementation may take
a subset of them, so old plugins keep working.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("anymodal")
hookimpl = pluggy.HookimplMarker("anymodal")


@hookspec
def register_modalities(register: Callable[..., None]) -> None:
    """Register :class:`anymodal.ModalitySpec` objects."""


@hookspec
def register_encoders(register: Callable[..., None]) -> None:
    """Register :class:`anymodal.EncoderSpec` objects."""


@hookspec
def register_projectors(register: Callable[..., None]) -> None:
    """Register :class:`anymodal.ProjectorSpec` objects."""


@hookspec
def register_bridges(register: Callable[..., None]) -> None:
    """Register :class:`anymodal.BridgeSpec` objects."""


@hookspec
def register_templates(register: Callable[..., None]) -> None:
    """Register :class:`anymodal.TemplateSpec` objects (conversation templates)."""


@hookspec
def register_benchmarks(register: Callable[..., None]) -> None:
    """Register :class:`anymodal.BenchmarkSpec` objects (``anymodal eval --benchmark``)."""
