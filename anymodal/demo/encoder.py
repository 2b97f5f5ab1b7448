"""The demo model's encoder: a small ImageBind, pre-trained on the world's named attributes.

The real ImageBind is pre-trained (contrastively, on web-scale pairs) before anyone trains a
projector on it. The demo's stand-in gets its pre-training here: every trunk the demo uses
(vision for images and video, audio, depth, thermal, imu) is trained, together with one linear
head per named attribute on its pooled output, to classify the training world's attributes.
The heads are thrown away; the trunks are saved in ImageBind's own checkpoint key layout, so
the demo's config loads them as any ImageBind weights (``encoder.weights``). Inputs go through
the modality plugins' own loaders and preprocessing, with the demo config's options.

Trunks share no parameters, so each is trained on its own schedule, one after another: the
vision trunk, which must tell shapes apart in small pictures and motion in two-frame tubelets,
needs twenty times the steps (and a lower learning rate: at 2e-3 it takes thousands of steps
longer to start using position) of the trunks that only tell a pitch or a temperature apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anymodal.config.schema import AnymodalConfig, ScheduleConfig
from anymodal.contract.registry import Registry


@dataclass(frozen=True)
class TrunkSchedule:
    """The pre-training of one trunk: batches of its modalities in turn, ``steps`` in all.

    modalities: (modality, batches of it per cycle, batch size) for each modality of the trunk.
    """

    modalities: tuple[tuple[str, int, int], ...]
    steps: int
    lr: float
    warmup_steps: int = 150


def _default_trunks() -> tuple[TrunkSchedule, ...]:
    return (
        # A video is two clips: 32 videos cost what 64 images do.
        TrunkSchedule((("image", 3, 64), ("video", 1, 32)), steps=8000, lr=1e-3),
        TrunkSchedule((("audio", 1, 64),), steps=300, lr=2e-3, warmup_steps=30),
        TrunkSchedule((("depth", 1, 64),), steps=300, lr=2e-3, warmup_steps=30),
        TrunkSchedule((("thermal", 1, 64),), steps=300, lr=2e-3, warmup_steps=30),
        TrunkSchedule((("imu", 1, 64),), steps=250, lr=2e-3, warmup_steps=30),
    )


@dataclass(frozen=True)
class EncoderRecipe:
    """Pre-training of the demo ImageBind's trunks."""

    trunks: tuple[TrunkSchedule, ...] = field(default_factory=_default_trunks)
    weight_decay: float = 0.05
    seed: int = 0

    def scaled(self, factor: float) -> EncoderRecipe:
        """The same recipe with every trunk's steps (and warm-up) multiplied by ``factor``."""
        trunks = tuple(
            TrunkSchedule(
                t.modalities,
                max(1, round(t.steps * factor)),
                t.lr,
                max(1, round(t.warmup_steps * factor)),
            )
            for t in self.trunks
        )
        return EncoderRecipe(trunks, self.weight_decay, self.seed)


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
    worlds: Sequence[Path],
    config: AnymodalConfig,
    registry: Registry,
    vocabulary: Mapping[str, Mapping[str, tuple[str, ...]]],
    log: Callable[[str], None] = print,
) -> dict[str, ModalityData]:
    """Every file of the worlds' enabled modalities, preprocessed as the model will see it."""
    import torch

    from anymodal.encoders.imagebind.spec import ImageBindOptions
    from anymodal.runtime.model import prepare_input

    items: dict[str, list[tuple[Path, dict[str, str]]]] = {}
    for world in worlds:
        for modality, found in read_labelled(world).items():
            items.setdefault(modality, []).extend(found)
    data = {}
    for modality, files in items.items():
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
            for path, _ in files
        ]
        labels = [[attributes[name].index(found[name]) for name in attributes] for _, found in files]
        data[modality] = ModalityData(
            options.trunk_for(modality), torch.stack(tensors), torch.tensor(labels), attributes
        )
        log(f"encoder data: {len(files)} {modality} files, {tuple(data[modality].inputs.shape[1:])}")
    return data


def pretrain_encoder(
    data: Mapping[str, ModalityData],
    held_out: Mapping[str, ModalityData],
    imagebind_config: Any,
    out_file: Path,
    recipe: EncoderRecipe = EncoderRecipe(),
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """Train the trunks ``data`` needs on its labels, each on its schedule in ``recipe``; save them
    to ``out_file`` (safetensors, the official key names). Returns the accuracy on ``held_out`` per
    modality and attribute."""
    import torch
    from safetensors.torch import save_file
    from torch import nn

    from anymodal.encoders.imagebind.model import ImageBind

    schedules = _schedules_for(data, recipe)
    # Seeded for the whole run, not only the initialisation: ImageBind's IMU head has dropout, which
    # draws from torch's global generator (unseeded, the IMU trunk differed from run to run).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = ImageBind(imagebind_config, sorted({item.trunk for item in data.values()}))
        width = imagebind_config.out_embed_dim
        heads = nn.ModuleDict(
            {
                _head_name(modality, name): nn.Linear(width, len(values))
                for modality, item in data.items()
                for name, values in item.attributes.items()
            }
        )
        generator = torch.Generator().manual_seed(recipe.seed)
        model.train()
        for trunk, schedule in schedules:
            _train_trunk(model, heads, data, trunk, schedule, recipe.weight_decay, generator, log)
        model.eval()
    accuracy = _held_out_accuracy(model, heads, held_out)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(out_file))
    return accuracy


def _schedules_for(
    data: Mapping[str, ModalityData], recipe: EncoderRecipe
) -> list[tuple[str, TrunkSchedule]]:
    """(trunk, schedule) for every schedule with a modality in ``data``, restricted to those."""
    chosen = []
    covered: set[str] = set()
    for schedule in recipe.trunks:
        present = tuple(entry for entry in schedule.modalities if entry[0] in data)
        if not present:
            continue
        trunks = {data[modality].trunk for modality, _, _ in present}
        if len(trunks) != 1:
            raise ValueError(f"one schedule must train one trunk, not {', '.join(sorted(trunks))}")
        covered.update(modality for modality, _, _ in present)
        chosen.append(
            (trunks.pop(), TrunkSchedule(present, schedule.steps, schedule.lr, schedule.warmup_steps))
        )
    missing = sorted(set(data) - covered)
    if missing:
        raise ValueError(f"the encoder recipe has no schedule for {', '.join(missing)}")
    return chosen


def _head_name(modality: str, attribute: str) -> str:
    return f"{modality}:{attribute}"


def _train_trunk(
    model: Any,
    heads: Any,
    data: Mapping[str, ModalityData],
    trunk: str,
    schedule: TrunkSchedule,
    weight_decay: float,
    generator: Any,
    log: Callable[[str], None],
) -> None:
    """``schedule.steps`` AdamW steps (warm-up, then cosine) on ``trunk`` and its modalities' heads."""
    import torch
    from torch import nn

    from anymodal.train.schedule import make_scheduler

    names = [modality for modality, _, _ in schedule.modalities]
    parameters = [
        parameter for name, parameter in model.named_parameters() if name.split(".")[1] == trunk
    ] + [
        parameter
        for modality in names
        for attribute in data[modality].attributes
        for parameter in heads[_head_name(modality, attribute)].parameters()
    ]
    optimizer = torch.optim.AdamW(parameters, lr=schedule.lr, weight_decay=weight_decay)
    decay = ScheduleConfig(warmup_steps=schedule.warmup_steps, decay="cosine")
    scheduler = make_scheduler(optimizer, decay, schedule.steps)
    cycle = [(modality, size) for modality, share, size in schedule.modalities for _ in range(share)]
    recent: dict[str, list[float]] = {modality: [] for modality in names}
    every = max(1, schedule.steps // 10)
    for step in range(schedule.steps):
        modality, size = cycle[step % len(cycle)]
        item = data[modality]
        rows = torch.randint(len(item.inputs), (size,), generator=generator)
        pooled = model.encode(trunk, item.inputs[rows]).pooled
        labels = item.labels[rows]
        loss = sum(
            (
                nn.functional.cross_entropy(heads[_head_name(modality, name)](pooled), labels[:, column])
                for column, name in enumerate(item.attributes)
            ),
            torch.zeros(()),  # 0 + x is x exactly: the same sum as from int 0, typed as a tensor
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        recent[modality] = [*recent[modality][-19:], loss.item()]
        if (step + 1) % every == 0 or step + 1 == schedule.steps:
            losses = ", ".join(f"{m} {sum(v) / max(1, len(v)):.3f}" for m, v in recent.items())
            log(f"encoder {trunk} step {step + 1}/{schedule.steps}: loss {losses}")


def _held_out_accuracy(
    model: Any, heads: Any, held_out: Mapping[str, ModalityData]
) -> dict[str, dict[str, float]]:
    """modality -> attribute -> the share of ``held_out`` files whose head picks the right class."""
    import torch

    accuracy: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for modality, item in held_out.items():
            pooled = torch.cat(
                [
                    model.encode(item.trunk, item.inputs[i : i + 64]).pooled
                    for i in range(0, len(item.inputs), 64)
                ]
            )
            accuracy[modality] = {
                name: round(
                    float(
                        (heads[_head_name(modality, name)](pooled).argmax(-1) == item.labels[:, c])
                        .float()
                        .mean()
                    ),
                    4,
                )
                for c, name in enumerate(item.attributes)
            }
    return accuracy
