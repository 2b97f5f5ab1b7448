"""Test helpers for anymodal, its plugins and bridges: tiny models built locally, no downloads,
and the plugin conformance suite (:class:`PluginConformance`).

Importing this package is cheap: torch and transformers load when a builder is called, and
pytest when the conformance suite is first used.

May import: contract, files, preprocess, anymodal, config, encoders, projectors, runtime, models,
scaffold, train, bind, data, eval, serve, demo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anymodal.testing.plugins import prepare_file, registered_modality
from anymodal.testing.tiny import (
    CHATML_TEMPLATE,
    DEFAULT_CORPUS,
    TINY_IMAGEBIND,
    save_scripted_llm,
    save_tiny_imagebind,
    save_tiny_llm,
    scripted_llama,
    tiny_llama,
    train_bpe_tokenizer,
)

if TYPE_CHECKING:
    from anymodal.testing.conformance import PluginConformance
    from anymodal.testing.fuzz import check_damaged_file, damaged_files, fuzz_modality

#: Names loaded on first use, from the module that holds them (they import pytest or Hypothesis).
_LAZY = {
    "PluginConformance": "anymodal.testing.conformance",
    "check_damaged_file": "anymodal.testing.fuzz",
    "damaged_files": "anymodal.testing.fuzz",
    "fuzz_modality": "anymodal.testing.fuzz",
}

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_CORPUS",
    "TINY_IMAGEBIND",
    "PluginConformance",
    "check_damaged_file",
    "damaged_files",
    "fuzz_modality",
    "prepare_file",
    "registered_modality",
    "save_scripted_llm",
    "save_tiny_imagebind",
    "save_tiny_llm",
    "scripted_llama",
    "tiny_llama",
    "train_bpe_tokenizer",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
