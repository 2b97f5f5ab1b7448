"""Everything a run needs before its first step: the data, checked first, and the model with its
trainable set.

The trainable set comes from ``train.stage`` (1: projectors; 2: projectors and LoRA) and
``train.projectors`` (which modalities' projectors). Trainable weights are kept in float32 even
when the frozen LLM and encoders are bfloat16; autocast does the low-precision math.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from anymodal.config.schema import AnymodalConfig, TrainConfig
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import Registry
from anymodal.contract.specs import LoraSettings
from anymodal.runtime.model import AnyModalModel
from anymodal.runtime.processor import PromptProcessor
from anymodal.train import checkpoint
from anymodal.train.data import DataReport, Record, check_report, read_records
from anymodal.train.examples import Example, Skipped, build_example


def with_weights_from(config: AnymodalConfig, directory: Path) -> AnymodalConfig:
    """A copy of ``config`` whose projectors and adapter load from a checkpoint ``directory``."""
    config = copy.deepcopy(config)
    projectors, adapter = checkpoint.weights_from(directory, list(config.model.modalities))
    for name, file in projectors.items():
        config.model.modalities[name].projector.weights = file
    if adapter is not None:
        config.model.llm.adapter = adapter
    return config


def build_model(config: AnymodalConfig, registry: Registry, device: str) -> AnyModalModel:
    """The model on ``device`` (accelerate's device for this process)."""
    model_config = copy.deepcopy(config.model)
    model_config.device = device
    return AnyModalModel.from_config(model_config, registry, init_seed=config.train.seed)


def select_trainable(model: AnyModalModel, train: TrainConfig) -> dict[str, nn.Parameter]:
    """Freeze everything, then unfreeze the configured projectors (and add LoRA in stage 2).

    Returns the trainable parameters by name, in a fixed order (the optimizer's state follows it).
    """
    model.requires_grad_(False)
    if train.stage == 2:
        lora = train.lora
        model.bridge.add_lora(LoraSettings(lora.r, lora.alpha, lora.dropout, tuple(lora.target_modules)))
        model.llm = model.bridge.module  # the PEFT wrapper replaces the bare LLM
    for name in train.projectors if train.projectors is not None else list(model.projectors):
        model.projectors[name].float().requires_grad_(True)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not trainable:
        raise UsageError(
            "nothing to train: no projector is selected and LoRA is off",
            hint="enable a modality in model.modalities, list it in train.projectors, or use train.stage=2",
        )
    for parameter in trainable.values():
        parameter.data = parameter.data.float()
    return trainable


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


@dataclass
class TrainingData:
    train: list[Example]
    eval: list[Example]
    reports: list[DataReport]
    #: Records that tokenised to nothing trainable within max_length.
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> str:
        lines = [report.summary() for report in self.reports]
        if self.skipped:
            first = self.skipped[0]
            lines.append(
                f"{len(self.skipped)} record(s) skipped as too long (e.g. {first.source}: {first.detail})"
            )
        lines.append(f"{len(self.train)} training and {len(self.eval)} evaluation examples")
        return "\n".join(lines)


@dataclass
class Records:
    """Validated records, split into training and held-out, with their data reports."""

    train: list[Record]
    eval: list[Record]
    reports: list[DataReport]


def read_data(config: AnymodalConfig, registry: Registry) -> Records:
    """Read and validate the training (and evaluation) records. Needs no model, so a bad data
    file is reported before anything heavy is loaded."""
    data = config.train.data
    if not data.train:
        raise UsageError(
            "train.data.train is not set: training needs a JSON or JSONL file of conversations",
            hint="set it in the config or on the command line: train.data.train=path/to/data.jsonl",
        )
    placeholders = {name: registry.modalities[name].placeholder for name in config.model.modalities}

    def read(file: str) -> tuple[list[Record], DataReport]:
        records, report = read_records(
            file, placeholders=placeholders, media_root=data.media_root, ignore_keys=data.ignore_keys
        )
        check_report(report, data.on_invalid)
        return records, report

    train_records, train_report = read(data.train)
    reports = [train_report]
    if data.eval:
        eval_records, eval_report = read(data.eval)
        reports.append(eval_report)
    elif data.eval_fraction > 0:
        shuffled = list(train_records)
        random.Random(config.train.seed).shuffle(shuffled)
        held_out = max(1, round(len(shuffled) * data.eval_fraction))
        eval_records, train_records = shuffled[:held_out], shuffled[held_out:]
    else:
        eval_records = []
    return Records(train_records, eval_records, reports)


def tokenize_data(
    records: Records, config: AnymodalConfig, model: AnyModalModel, processor: PromptProcessor
) -> TrainingData:
    """Tokenise the records for ``model``; records with no answer within max_length are skipped or
    refused as ``train.data.on_invalid`` says."""
    data = config.train.data
    tokens = {name: model.tokens_per_input(name) for name in model.specs}
    result = TrainingData([], [], records.reports)
    for source, examples in ((records.train, result.train), (records.eval, result.eval)):
        for record in source:
            built = build_example(record, processor, tokens, data.max_length, config.model.system_prompt)
            if isinstance(built, Skipped):
                result.skipped.append(built)
            else:
                examples.append(built)
    if result.skipped and data.on_invalid == "fail":
        first = result.skipped[0]
        raise UsageError(
            f"{len(result.skipped)} record(s) have no answer tokens within train.data.max_length="
            f"{data.max_length} (e.g. {first.source})",
            hint="raise train.data.max_length, or set train.data.on_invalid=skip to leave them out",
        )
    if not result.train:
        raise UsageError(f"no usable training examples in {data.train}", hint="see the data report above")
    return result
