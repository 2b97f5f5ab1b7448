"""LoRA on a Hugging Face causal LM through PEFT, with target modules checked against the model."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

import anymodal


def linear_layer_names(model: nn.Module) -> list[str]:
    """The distinct short names (``q_proj``, ``c_attn``, ...) of the layers LoRA can wrap."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if _is_linear(module)})


def check_target_modules(model: nn.Module, targets: tuple[str, ...] | list[str]) -> None:
    """Raise a UsageError naming every target that matches no linear layer, and the names that do."""
    full_names = [name for name, module in model.named_modules() if _is_linear(module)]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in full_names)]
    if not targets or missing:
        listed = ", ".join(map(repr, missing)) if missing else "none given"
        raise anymodal.UsageError(
            f"LoRA target module(s) not found in the LLM: {listed}",
            hint=f"linear layers this model has: {', '.join(linear_layer_names(model))}",
        )


def add_lora(model: nn.Module, settings: anymodal.LoraSettings) -> Any:
    """Wrap ``model`` in fresh LoRA adapters; only the adapters are trainable afterwards."""
    from peft import LoraConfig, get_peft_model

    targets = list(settings.target_modules)
    check_target_modules(model, targets)
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        bias="none",
        # GPT-2-style Conv1D layers store weights transposed; say so instead of letting PEFT warn.
        fan_in_fan_out=_targets_conv1d(model, targets),
    )
    with quiet_peft_deprecations():
        return get_peft_model(model, config)


def train_loaded_adapter(model: Any, settings: anymodal.LoraSettings) -> None:
    """Make an adapter loaded from disk trainable again (resuming stage 2), if it matches ``settings``.

    Its weights, loaded in the model's dtype, are upcast to float32 as :func:`add_lora`'s are
    (PEFT's ``autocast_adapter_dtype``), so training updates them in full precision.
    """
    from peft.tuners.tuners_utils import cast_adapter_dtype

    config = model.active_peft_config
    loaded_targets = set(config.target_modules or ())
    if config.r != settings.r or loaded_targets != set(settings.target_modules):
        raise anymodal.UsageError(
            f"the loaded LoRA adapter has r={config.r} on {sorted(loaded_targets)}, but training asks for "
            f"r={settings.r} on {sorted(settings.target_modules)}",
            hint="make the lora settings match the adapter, or train without model.llm.adapter",
        )
    cast_adapter_dtype(model, model.active_adapter, autocast_adapter_dtype=True)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)


@contextmanager
def quiet_peft_deprecations() -> Iterator[None]:
    """PEFT still asks transformers 5 a deprecated question; the warning is not the user's to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _targets_conv1d(model: nn.Module, targets: list[str]) -> bool:
    return any(
        type(module).__name__ == "Conv1D" and name.rsplit(".", 1)[-1] in targets
        for name, module in model.named_modules()
    )


def _is_linear(module: nn.Module) -> bool:
    # transformers' Conv1D (GPT-2 family) is a linear layer with transposed weights; PEFT wraps it too.
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"
