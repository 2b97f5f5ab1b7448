"""Helpers for testing a modality plugin the way the runtime uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anymodal.contract.specs import ModalitySpec
from anymodal.files.inputs import DEFAULT_MAX_INPUT_MB


def registered_modality(plugin: Any, name: str | None = None) -> ModalitySpec:
    """The ModalitySpec a plugin registers (the one called ``name`` when it registers several),
    obtained by calling its ``register_modalities`` hook directly, without entry points."""
    specs: list[ModalitySpec] = []
    plugin.register_modalities(specs.append)
    matching = [spec for spec in specs if name is None or spec.name == name]
    if len(matching) != 1:
        raise LookupError(
            f"{plugin!r} registers {[s.name for s in specs]}, not exactly one {name or 'modality'}"
        )
    return matching[0]


def prepare_file(spec: ModalitySpec, path: str | Path, **options: Any) -> Any:
    """What the runtime does with a file: check it, decode it, preprocess it; the tensor."""
    from anymodal.runtime.model import prepare_input

    return prepare_input(spec, path, options, DEFAULT_MAX_INPUT_MB).tensor
