"""The demo model's encoder: a small ImageBind, pre-trained on the world's named attributes.

The real ImageBind is pre-trained (contrastively, on web-scale pairs) before anyone trains a
projector on it. The demo's stand-in gets its pre-training here: every trunk the demo uses
(vision for images and video, audio, depth, thermal, imu) is trained, together with one linear
head per named attribute on its pooled output, to classify the training world's attributes.
The heads are thrown away; the trunks are saved in ImageBind's own checkpoint key layout, so
the demo's config loads them as any ImageBind weights (``encoder.weights``). Inputs go through
the modality plugins' own loaders and preprocessing, with the demo config's options.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymodal.config.schema import AnymodalConfig, ScheduleConfig
from anymodal.plugins import Registry


@dataclass(frozen=True)
class EncoderRecipe:
    """Pre-training of the demo ImageBind's trunks."""

    steps: int = 4200
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 150
    #: The share of held-out files per modality, scored at the end.
    held_out: float = 0.1
    seed: int = 0
    #: Batches of each modality in every cycle of steps; shapes in images are the hardest to learn.
    shares: tuple[tuple[str, int], ...] = (
        ("image", 6),
        ("video", 2),
        ("audio", 1),
        ("depth", 1),
        ("thermal", 1),
        ("imu", 1),
    )


@dataclass
class ModalityData:
    """One modality's preprocessed files and their attribute labels (class indices)."""

    trunk: str
    inputs: Any  # torch.Tensor [N, ...]
    labels: Any  # torch.Tensor [N, attributes]
    attributes: dict[str, tuple[str, ...]]


def read_labelled(world: Path) -> dict[str, list[tuple[Path, dict[str, str]]]]:
    """modality -> [(file, {attribute: class})] from a demo world's ``conversations.jsonl``."""
    files: dict[str, list[tuple[Path, dict[str, str]]]] = {}
    for line in (world / "conversations.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        meta = record["meta"]
        modality = meta["modality"]
        files.setdefault(modality, []).append((world / record[modality], dict(meta["attributes"])))
    return files


def load_modalities(
    world: Path,
    config: AnymodalConfig,
    registry: Registry,
    vocabulary: Mapping[str, Mapping[str, tuple[str, ...]]],
    log: Callable[[str], None] = print,
) -> dict[str, ModalityData]:
    """Every file of the world's enabled modalities, preprocessed as the model will see it."""
    import torch

    from anymodal.encoders.imagebind.spec import ImageBindOptions
    from anymodal.runtime import prepare_input

    data = {}
    for modality, items in read_labelled(world).items():
        if modality not in config.model.modalities:
            continue
        settings = config.model.modalities[modality]
        spec = registry.modalities[modality]
        options = settings.encoder.options
        if not isinstance(options, ImageBindOptions):
            raise TypeError(f"the demo's {modality} encoder must be imagebind, not {settings.encoder.name}")
        attributes = {name: tuple(values) for name, values in vocabulary[modality].items()}
        tensors = [
            prepare_input(spec, path, settings.preprocess, config.model.max_input_mb).tensor
            for path, _ in items
        ]
        labels = [[attributes[name].index(found[name]) for name in attributes] for _, found in items]
        data[modality] = ModalityData(
            options.trunk_for(modality), torch.stack(tensors), torch.tensor(labels), attributes
        )
        log(f"encoder data: {len(items)} {modality} files, {tuple(data[modality].inputs.shape[1:])}")
    return data


def pretrain_encoder(
    data: Mapping[str, ModalityData],
    imagebind_config: Any,
    out_file: Path,
    recipe: EncoderRecipe = EncoderRecipe(),
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """Train the trunks ``data`` needs on its labels; save them to ``out_file`` (safetensors, the
    official key names). Returns the held-out accuracy per modality and attribute."""
    import torch
    from safetensors.torch import save_file
    from torch import nn

    from anymodal.encoders.imagebind.model import ImageBind
    from anymodal.train.schedule import make_scheduler

    trunks = sorted({item.trunk for item in data.values()})
    generator = torch.Generator().manual_seed(recipe.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = ImageBind(imagebind_config, trunks)
        width = imagebind_config.out_embed_dim
        heads = nn.ModuleDict(
            {
                f"{modality}:{name}": nn.Linear(width, len(values))
                for modality, item in data.items()
                for name, values in item.attributes.items()
            }
        )
    splits = {
        modality: _split(len(item.inputs), recipe.held_out, generator) for modality, item in data.items()
    }
    parameters = [*model.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = ScheduleConfig(warmup_steps=recipe.warmup_steps, decay="cosine")
    scheduler = make_scheduler(optimizer, schedule, recipe.steps)
    order = [modality for modality, share in recipe.shares if modality in data for _ in range(share)]
    order += [modality for modality in data if modality not in order]

    def loss_on(modality: str, rows: Any) -> Any:
        item = data[modality]
        pooled = model.encode(item.trunk, item.inputs[rows]).pooled
        labels = item.labels[rows]
        return sum(
            nn.functional.cross_entropy(heads[f"{modality}:{name}"](pooled), labels[:, column])
            for column, name in enumerate(item.attributes)
        )

    model.train()
    recent: dict[str, list[float]] = {modality: [] for modality in data}
    for step in range(recipe.steps):
        modality = order[step % len(order)]
        train_rows = splits[modality][0]
        pick = torch.randint(len(train_rows), (recipe.batch_size,), generator=generator)
        loss = loss_on(modality, train_rows[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        recent[modality] = [*recent[modality][-19:], loss.item()]
        if (step + 1) % 300 == 0 or step + 1 == recipe.steps:
            losses = ", ".join(f"{m} {sum(v) / max(1, len(v)):.3f}" for m, v in recent.items())
            log(f"encoder step {step + 1}/{recipe.steps}: {losses}")
    model.eval()
    accuracy = _held_out_accuracy(model, heads, data, splits)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(out_file))
    return accuracy


def _split(count: int, held_out: float, generator: Any) -> tuple[Any, Any]:
    import torch

    order = torch.randperm(count, generator=generator)
    cut = count - max(1, int(count * held_out))
    return order[:cut], order[cut:]


def _held_out_accuracy(
    model: Any, heads: Any, data: Mapping[str, ModalityData], splits: Mapping[str, tuple[Any, Any]]
) -> dict[str, dict[str, float]]:
    import torch

    accuracy: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for modality, item in data.items():
            rows = splits[modality][1]
            pooled = torch.cat(
                [
                    model.encode(item.trunk, item.inputs[rows[i : i + 64]]).pooled
                    for i in range(0, len(rows), 64)
                ]
            )
            accuracy[modality] = {
                name: float(
                    (heads[f"{modality}:{name}"](pooled).argmax(-1) == item.labels[rows, c]).float().mean()
                )
                for c, name in enumerate(item.attributes)
            }
    return accuracy
