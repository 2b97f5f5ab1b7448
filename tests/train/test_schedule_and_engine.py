"""Learning-rate schedule values, and how train.* selects accelerate's precision and strategy."""

from __future__ import annotations

import importlib.util
import math

import pytest

from anymodal.config.schema import DistributedConfig, ScheduleConfig, TrainConfig
from anymodal.contract.errors import UsageError
from anymodal.train.engine import make_accelerator, strategy_plugins
from anymodal.train.schedule import lr_factor, warmup_steps


def factors(config: ScheduleConfig, total: int) -> list[float]:
    return [round(lr_factor(step, config, total), 6) for step in range(total)]


def test_warmup_then_cosine_linear_or_constant():
    assert factors(ScheduleConfig(warmup_steps=2, decay="linear"), 6) == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25]
    cosine = factors(ScheduleConfig(warmup_steps=2, decay="cosine"), 6)
    assert cosine[:3] == [0.5, 1.0, 1.0]
    assert cosine[4] == round(0.5 * (1 + math.cos(math.pi * 0.5)), 6)
    assert factors(ScheduleConfig(warmup_steps=0, decay="constant"), 3) == [1.0, 1.0, 1.0]
    floor = factors(ScheduleConfig(warmup_steps=0, decay="linear", min_lr_ratio=0.2), 5)
    assert floor == [1.0, 0.84, 0.68, 0.52, 0.36]


def test_warmup_ratio_is_a_share_of_all_steps():
    assert warmup_steps(ScheduleConfig(warmup_ratio=0.1), 100) == 10
    assert warmup_steps(ScheduleConfig(warmup_steps=500), 100) == 100


def test_cpu_training_is_float32_and_bf16_there_is_refused():
    accelerator = make_accelerator(TrainConfig(grad_accum=3), "cpu")
    assert accelerator.mixed_precision == "no" and accelerator.gradient_accumulation_steps == 3
    with pytest.raises(UsageError, match="needs a CUDA device"):
        make_accelerator(TrainConfig(precision="bf16"), "cpu")


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed")
def test_deepspeed_without_deepspeed_is_a_clear_error():
    config = TrainConfig(distributed=DistributedConfig(strategy="deepspeed_zero3"))
    with pytest.raises(UsageError, match="needs DeepSpeed, which is not installed"):
        strategy_plugins(config)


def test_ddp_needs_no_plugin_and_fsdp_keeps_per_parameter_trainability():
    assert strategy_plugins(TrainConfig()) == {}
    plugin = strategy_plugins(TrainConfig(distributed=DistributedConfig(strategy="fsdp")))["fsdp_plugin"]
    assert plugin.use_orig_params is True
