"""Core's own pieces, registered through the same hooks as any plugin."""

from __future__ import annotations

from collections.abc import Callable

from anymodal.contract.hookspecs import hookimpl
from anymodal.contract.specs import CONTRACT_VERSION

ANYMODAL_CONTRACT = CONTRACT_VERSION


@hookimpl
def register_projectors(register: Callable[..., None]) -> None:
    from anymodal.projectors.specs import PROJECTORS

    for spec in PROJECTORS:
        register(spec)


@hookimpl
def register_templates(register: Callable[..., None]) -> None:
    from anymodal.runtime.templates import TEMPLATES

    for spec in TEMPLATES:
        register(spec)


@hookimpl
def register_encoders(register: Callable[..., None]) -> None:
    from anymodal.encoders.imagebind.spec import IMAGEBIND_ENCODER

    register(IMAGEBIND_ENCODER)
