"""Test helpers for anymodal, its plugins and bridges: tiny models built locally, no downloads.

Importing this package is cheap; torch and transformers load when a builder is called.
"""

from anymodal.testing.plugins import prepare_file, registered_modality
from anymodal.testing.tiny import (
    CHATML_TEMPLATE,
    DEFAULT_CORPUS,
    save_tiny_llm,
    scripted_llama,
    tiny_llama,
    train_bpe_tokenizer,
)

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_CORPUS",
    "prepare_file",
    "registered_modality",
    "save_tiny_llm",
    "scripted_llama",
    "tiny_llama",
    "train_bpe_tokenizer",
]
