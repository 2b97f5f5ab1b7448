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
    #: Written ``from``: another enabled modality whose projector (its very module and weights)
    #: this modality's inputs go through, as PandaGPT sends audio, depth, thermal and IMU through
    #: its image projection: for an encoder bound to that modality's space (``anymodal bind``).
    #: ``name``, ``weights`` and ``options`` are then that modality's, and so is the span framing
    #: the input in the prompt (``<image>...</image>``), as PandaGPT frames every modality as an image.
    from_: str | None = field(default=None, metadata={"key": "from"})
    #: With ``from``: the length the pooled embedding is scaled to (after L2-normalising it) before
    #: that projector reads it, the typical length of that modality's own embeddings; ``anymodal
    #: bind`` writes it (its objective trains directions, not lengths). None: as the encoder gives it.
    norm: float | None = None


@dataclass
class ModalityConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    #: Keyword options passed to the modality's preprocessor.
    preprocess: dict[str, Any] = field(default_factory=dict)
    #: Leave the modality out, instead of refusing the config, when no installed plugin provides
    #: it: a shared model (the built-in demo) that knows more modalities than a user installed.
    optional: bool = False


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
    #: Where the encoders run: "auto" is model.device; "cpu" keeps them off the GPU (in the dtype
    #: "auto" gives there), for an LLM that needs all of its memory.
    encoder_device: str = "auto"
    #: Inputs larger than this many MB are refused.
    max_input_mb: float = 2048
    #: Printed when a chat starts (for example: what this model does not know).
    notice: str | None = None
    #: How to get this model's weight files, said when some are missing (presets set it).
    weights_help: str | None = None


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    #: Extra stop strings, added to the template's own.
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    #: Memory for the LLM's KV caches of recent conversations, continued instead of run again
    #: (anymodal.runtime.prefix_cache); 0 turns reuse off.
    kv_cache_mb: float = 1024
    #: Most replies decoded together, one forward per step for all (``anymodal serve``,
    #: ``anymodal batch``, ``anymodal eval``); 1 decodes one at a time.
    max_batch: int = 16
    #: How long the server waits for more requests before starting a batch from idle, in ms.
    batch_wait_ms: float = 5


@dataclass
class DataConfig:
    #: Training data: LLaVA/PandaGPT-style JSON or JSONL conversations.
    train: str | None = None
    #: Held-out data for the evaluation loss; None with ``eval_fraction`` 0 means no evaluation.
    eval: str | None = None
    #: Without ``eval``: this fraction of the training records (chosen with the seed) is held out.
    eval_fraction: float = 0.0
    #: Media paths in records are relative to this directory; None: the data file's directory.
    media_root: str | None = None
    #: What to do with invalid records found by the validation pass: "fail" or "skip" (with a report).
    on_invalid: Literal["fail", "skip"] = "fail"
    #: Record keys that are neither media nor conversations (``id`` is always ignored).
    ignore_keys: list[str] = field(default_factory=list)
    #: Tokens per sample; longer samples are cut at a span boundary, never inside an input's span.
    max_length: int = 1024


@dataclass
class OptimizerConfig:
    #: AdamW; the defaults are PandaGPT's.
    lr: float = 5e-4
    weight_decay: float = 0.001
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8


@dataclass
class ScheduleConfig:
    #: Linear warm-up over this many optimizer steps; None uses ``warmup_ratio`` of all steps.
    warmup_steps: int | None = None
    warmup_ratio: float = 0.1
    #: Decay after warm-up down to ``min_lr_ratio * lr``: cosine, linear or constant.
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.0


@dataclass
class DistributedConfig:
    #: How accelerate spreads training over the processes it was launched with (one process: none).
    #: ddp; deepspeed_zero2 / deepspeed_zero3 (needs deepspeed); fsdp.
    strategy: Literal["ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp"] = "ddp"
    #: DeepSpeed only: keep optimizer state in CPU memory (PandaGPT trained this way).
    offload_optimizer: bool = False


@dataclass
class TrainConfig:
    #: 1: train the projectors only. 2: the projectors and LoRA adapters on the LLM.
    stage: Literal[1, 2] = 1
    #: Modalities whose projectors train; None: every enabled modality.
    projectors: list[str] | None = None
    #: LoRA settings for stage 2; the defaults are PandaGPT's.
    lora: LoraConfig = field(default_factory=LoraConfig)
    #: A checkpoint directory whose projectors (and adapter, if any) start this run, e.g. stage 1's.
    init_from: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    #: Checkpoints, metrics and the resolved config go here.
    output_dir: str = "runs/anymodal"
    epochs: int = 1
    #: Stop after this many optimizer steps (overrides ``epochs`` when set).
    max_steps: int | None = None
    #: Samples per process per micro-batch; an optimizer step sees batch_size x grad_accum x processes.
    batch_size: int = 4
    grad_accum: int = 1
    #: Clip the gradient norm to this; 0 disables clipping.
    max_grad_norm: float = 1.0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    #: "auto": bf16 autocast on CUDA, float32 on CPU.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    gradient_checkpointing: bool = False
    seed: int = 0
    #: A directory where frozen encoders' outputs are computed once and reused across epochs and
    #: runs (keyed by file content, preprocessing and encoder identity); None encodes every step.
    feature_cache: str | None = None
    #: Optimizer steps between log lines, evaluations and checkpoints (eval/save 0: only at the end).
    log_every: int = 10
    eval_every: int = 0
    save_every: int = 500
    #: Checkpoints kept on disk (oldest deleted first); 0 keeps all.
    keep_checkpoints: int = 2
    #: DataLoader worker processes that decode and preprocess media.
    num_workers: int = 0
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


@dataclass
class BindConfig:
    """``anymodal bind``: which modality's encoder learns to land in which frozen modality's space."""

    #: The modality whose encoder trains (it must be in ``model.modalities``).
    modality: str | None = None
    #: The frozen modality whose pooled embeddings it learns to match (in ``model.modalities``).
    target: str = "image"
    #: JSON Lines of pairs, ``{"<modality>": path, "<target>": path}``.
    data: str | None = None
    #: Share of the pairs held out for the retrieval evaluation (0: none).
    eval_fraction: float = 0.1
    #: Names (prefixes) of the encoder's parameters that train, e.g. ``["head."]`` for a new head
    #: on a frozen backbone; empty: all of them.
    trainable: list[str] = field(default_factory=list)
    #: One over the InfoNCE temperature (ImageBind fixes 20 for audio, 5-10 for the others).
    logit_scale: float = 20.0
    learn_logit_scale: bool = False
    #: Targets of past batches kept as extra negatives (0: in-batch negatives only).
    queue_size: int = 0
    #: The ``k`` of the retrieval recall@k figures.
    recall_at: list[int] = field(default_factory=lambda: [1, 5])


@dataclass
class AnymodalConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    #: Used by ``anymodal train`` (and ``anymodal bind``'s loop); chat ignores it.
    train: TrainConfig = field(default_factory=TrainConfig)
    #: Used by ``anymodal bind`` only.
    bind: BindConfig = field(default_factory=BindConfig)
