"""Configuration: the schema, presets, loading with overrides, validation and device choice.

Importing this package imports no torch: a config is validated in full before anything heavy.

May import: contract, files, preprocess, anymodal.
"""

from anymodal.config.device import resolve_device, resolve_dtype
from anymodal.config.load import LoadedConfig, load_config, resolve_path
from anymodal.config.schema import (
    AnymodalConfig,
    EncoderConfig,
    GenerationSettings,
    LLMConfig,
    LoraConfig,
    ModalityConfig,
    ModelConfig,
    ProjectorConfig,
)
from anymodal.config.sources import CHECKPOINT_CONFIG, PRESET_PATH_ENV, available_presets
from anymodal.config.validate import build, validate_against

__all__ = [
    "CHECKPOINT_CONFIG",
    "PRESET_PATH_ENV",
    "AnymodalConfig",
    "EncoderConfig",
    "GenerationSettings",
    "LLMConfig",
    "LoadedConfig",
    "LoraConfig",
    "ModalityConfig",
    "ModelConfig",
    "ProjectorConfig",
    "available_presets",
    "build",
    "load_config",
    "resolve_device",
    "resolve_dtype",
    "resolve_path",
    "validate_against",
]
