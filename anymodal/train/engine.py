"""accelerate, set up from ``train.*``: precision, accumulation, and the distributed strategy.

anymodal never loops over devices itself. A run is launched as one process (``anymodal train``) or
many (``accelerate launch -m anymodal train ...`` or ``torchrun``); accelerate reads the launch
environment and the strategy chosen here. Checkpoints go through ``accelerator.save_state`` for
the optimizer, RNG and position (with ZeRO or FSDP those are sharded the engine's way), while the
frozen LLM and encoders are never written: a pre-hook drops model weights from the state, and the
trainable weights are saved separately as projector files and a PEFT adapter.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, DistributedType
from torch import nn

from anymodal.config.device import resolve_device
from anymodal.config.schema import TrainConfig
from anymodal.contract.errors import UsageError
from anymodal.runtime.model import AnyModalModel


def make_accelerator(train: TrainConfig, device: str) -> Accelerator:
    """An Accelerator for ``train``; ``device`` is ``model.device`` (auto, cpu, cuda ...)."""
    on_cpu = resolve_device(device) == "cpu"
    bf16 = train.precision == "bf16" or (train.precision == "auto" and not on_cpu)
    if bf16 and on_cpu:
        raise UsageError("train.precision=bf16 needs a CUDA device", hint="use train.precision=auto or fp32")
    plugins = strategy_plugins(train)
    accelerator = Accelerator(
        cpu=on_cpu,
        mixed_precision="bf16" if bf16 else "no",
        gradient_accumulation_steps=train.grad_accum,
        # Batches of one modality leave the other projectors without gradients in that step.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        **plugins,
    )
    accelerator.register_save_state_pre_hook(_drop_model_weights)
    accelerator.register_load_state_pre_hook(_skip_model_weights)
    return accelerator


def strategy_plugins(train: TrainConfig) -> dict[str, Any]:
    """The keyword arguments that select DeepSpeed ZeRO-2/3 or FSDP (none for DDP)."""
    strategy = train.distributed.strategy
    if strategy.startswith("deepspeed"):
        if importlib.util.find_spec("deepspeed") is None:
            raise UsageError(
                f"train.distributed.strategy={strategy} needs DeepSpeed, which is not installed",
                hint="pip install deepspeed, or use strategy ddp or fsdp",
            )
        from accelerate.utils import DeepSpeedPlugin

        stage = 2 if strategy == "deepspeed_zero2" else 3
        offload = "cpu" if train.distributed.offload_optimizer else "none"
        plugin = DeepSpeedPlugin(
            zero_stage=stage,
            gradient_accumulation_steps=train.grad_accum,
            gradient_clipping=train.max_grad_norm or None,
            offload_optimizer_device=offload,
        )
        return {"deepspeed_plugin": plugin}
    if strategy == "fsdp":
        from accelerate.utils import FullyShardedDataParallelPlugin

        # Frozen and trainable weights share layers (LoRA), so parameters must not be flattened
        # together: use_orig_params keeps requires_grad per parameter.
        return {"fsdp_plugin": FullyShardedDataParallelPlugin(use_orig_params=True)}
    return {}


def trainable_state(
    accelerator: Accelerator, wrapped: nn.Module, model: AnyModalModel
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, torch.Tensor] | None]:
    """Full (gathered) projector weights by modality, and the LLM's state dict when LoRA-wrapped.

    With DDP or one process the weights are read in place; with ZeRO-3 or FSDP they are gathered.
    """
    sharded = accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)
    state: Mapping[str, torch.Tensor] = accelerator.get_state_dict(wrapped) if sharded else {}
    projectors = {}
    for name, projector in model.projectors.items():
        prefix = f"model.projectors.{name}."
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        projectors[name] = own or dict(projector.state_dict())
    adapter = None
    if any("lora_" in name for name, _ in model.llm.named_parameters()):
        prefix = "model.llm."
        adapter = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)} or dict(
            model.llm.state_dict()
        )
    return projectors, adapter


def _drop_model_weights(models: list[nn.Module], weights: list[Any], output_dir: str) -> None:
    weights.clear()  # the frozen LLM and encoders are not checkpoint material


def _skip_model_weights(models: list[nn.Module], input_dir: str) -> None:
    models.clear()  # weights come from the projector files and the adapter instead
