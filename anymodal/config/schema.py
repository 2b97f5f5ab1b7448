"""The configuration schema: what a YAML preset, a checkpoint's ``anymodal.yaml`` or a
``key=value`` override may contain. Validated in full before anything heavy is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class EncoderConfig:
    #: Registered encoder name; None uses the modality's default encoder.
    name: str | None = None
    #: Weights file or directory for the encoder; relative paths are relative to the config file.
    weights: str | None = None
    #: Encoder-specific options, validated against the encoder spec's ``options`` dataclass.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProjectorConfig:
    #: Registered projector name (linear, mlp, resampler, ...); None uses the modality's default.
    name: str | None = None
    #: A safetensors file with trained projector weights; None starts from random weights.
    weights: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModalityConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    #: Keyword options passed to the modality's preprocessor.
    preprocess: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoraConfig:
    r: int = 32
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class LLMConfig:
    #: Registered LLM bridge name.
    bridge: str = "hf"
    #: Local model directory, a hub id, or ``builtin:<name>`` for a model that ships with anymodal.
    path: str = "builtin:tiny-untrained"
    #: A LoRA adapter directory (PEFT format) to load on top of the LLM.
    adapter: str | None = None
    #: Bridge-specific loading options (for the hf bridge: trust_remote_code, revision, ...).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    llm: LLMConfig = field(default_factory=LLMConfig)
    #: Enabled modalities, keyed by registered modality name.
    modalities: dict[str, ModalityConfig] = field(default_factory=dict)
    #: "auto": the tokenizer's chat template when it has one, else ``fallback_template``;
    #: "tokenizer": the tokenizer's chat template (an error without one); or a registered name.
    template: str = "auto"
    fallback_template: str = "plain"
    system_prompt: str | None = None
    #: "spans": every input is its own tagged span of tokens. "sum": PandaGPT's single summed token.
    fusion: Literal["spans", "sum"] = "spans"
    #: Text around each input's tokens; ``{name}`` is the modality name.
    span_open: str = "<{name}>"
    span_close: str = "</{name}>"
    #: "auto": CUDA when available, else CPU.
    device: str = "auto"
    #: "auto": bfloat16 on CUDA, float32 on CPU.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: Inputs larger than this many MB are refused.
    max_input_mb: float = 2048
    #: Printed when a chat starts (for example: this model is untrained).
    notice: str | None = None


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    #: Extra stop strings, added to the template's own.
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class AnymodalConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
