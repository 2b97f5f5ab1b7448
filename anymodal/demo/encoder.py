"""The demo model's encoder: a small ImageBind, pre-trained on the world's attributes (and captions).

The real ImageBind is pre-trained (contrastively, on web-scale pairs) before anyone trains a
projector on it. The demo's stand-in gets its pre-training here: every trunk the demo uses
(vision for images and video, audio, depth, thermal, imu) is trained, together with one linear
head per named attribute on its pooled output, to classify the training world's attributes.
With ``EncoderRecipe.caption_weight`` above 0, pictures are also matched, as CLIP's and
ImageBind's are, to captions of their layout by a symmetric InfoNCE against a small caption tower
(:mod:`anymodal.demo.captions`), so that the image space tells one scene from another and not only
its named attributes: what a sensor bound to it (``anymodal bind``) needs to retrieve in it (off
in the shipped recipe; docs/demo.md says why). The heads and the caption tower are thrown
away; the trunks are saved in ImageBind's own checkpoint key layout, so the demo's config loads
them as any ImageBind weights (``encoder.weights``). Inputs go through the modality plugins' own
loaders and preprocessing, with the demo config's options.

Trunks share no parameters, so each is trained on its own schedule, one after another: the
vision trunk, which must tell shapes apart in small pictures and motion in two-frame tubelets,
needs twenty times the steps (and a lower learning rate: at 2e-3 it takes thousands of steps
longer to start using position) of the trunks that only tell a pitch or a temperature apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    #: Weight of the caption InfoNCE beside the attribute heads' cross-entropy, and its logit scale
    #: (ImageBind's fixed 20). Off in the shipped recipe: at 1.0 and 0.3 the image space retrieves
    #: twice as well, but the model's image shape answers fell 5-6 points (docs/demo.md).
    caption_weight: float = 0.0
    caption_scale: float = 20.0

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
        return replace(self, trunks=trunks)


@dataclass
class ModalityData:
    """One modality's preprocessed files, their attribute labels (class indices) and, for pictures,
    their layout captions."""

    trunk: str
    inputs: Any  # torch.Tensor [N, ...]
    labels: Any  # torch.Tensor [N, attributes]
    attributes: dict[str, tuple[str, ...]]
    captions: Any = None  # torch.Tensor [N, CAPTION_WIDTH], or None for a modality without


@dataclass(frozen=True)
class Labelled:
    """One file of a demo world, with what its record's ``meta`` says of it."""

    path: Path
    attributes: dict[str, str]
    render: dict[str, Any]


#: The modalities whose files are captioned (:func:`anymodal.demo.captions.layout_caption`).
CAPTIONED = ("image",)


def read_labelled(world: Path) -> dict[str, list[Labelled]]:
    """modality -> its files, in order, from a demo world's ``conversations.jsonl`` (its two-input
    records, about files listed already, left out)."""
    files: dict[str, list[Labelled]] = {}
    for line in (world / "conversations.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        meta = record["meta"]
        if "sources" in meta:
            continue
        modality = meta["modality"]
        found = Labelled(world / record[modality], dict(meta["attributes"]), meta["render"])
        files.setdefault(modality, []).append(found)
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

    from anymodal.demo.captions import layout_caption
    from anymodal.encoders.imagebind.spec import ImageBindOptions
    from anymodal.runtime.model import prepare_input

    items: dict[str, list[Labelled]] = {}
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
            prepare_input(spec, item.path, settings.preprocess, config.model.max_input_mb).tensor
            for item in files
        ]
        labels = [[attributes[name].index(item.attributes[name]) for name in attributes] for item in files]
        captions = None
        if modality in CAPTIONED:
            captions = torch.tensor([layout_caption(item.render, item.attributes["shape"]) for item in files])
        data[modality] = ModalityData(
            options.trunk_for(modality), torch.stack(tensors), torch.tensor(labels), attributes, captions
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

    from anymodal.bind.objective import InfoNCE
    from anymodal.demo.captions import CaptionEncoder
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
        if recipe.caption_weight > 0:
            heads.update(
                {
                    _head_name(modality, CAPTION): CaptionEncoder(width)
                    for modality, item in data.items()
                    if item.captions is not None
                }
            )
        objective = _Objective(heads, InfoNCE(recipe.caption_scale), recipe.caption_weight)
        generator = torch.Generator().manual_seed(recipe.seed)
        model.train()
        for trunk, schedule in schedules:
            _train_trunk(model, objective, data, trunk, schedule, recipe.weight_decay, generator, log)
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


#: The name of a modality's caption tower among the heads.
CAPTION = "caption"


def _head_name(modality: str, attribute: str) -> str:
    return f"{modality}:{attribute}"


@dataclass(frozen=True)
class _Objective:
    """The pre-training loss of one batch: the attribute heads' cross-entropy summed, plus
    ``caption_weight`` times the caption InfoNCE for a modality that has a caption tower."""

    heads: Any  # nn.ModuleDict: "<modality>:<attribute>" linear heads, "<modality>:caption" towers
    contrast: Any  # InfoNCE
    caption_weight: float

    def parameters(self, modality: str, item: ModalityData) -> list[Any]:
        """The heads' (and the caption tower's) parameters that a batch of ``modality`` trains."""
        names = [_head_name(modality, attribute) for attribute in item.attributes]
        if _head_name(modality, CAPTION) in self.heads:
            names.append(_head_name(modality, CAPTION))
        return [parameter for name in names for parameter in self.heads[name].parameters()]

    def loss(self, modality: str, item: ModalityData, pooled: Any, rows: Any) -> Any:
        import torch
        from torch import nn

        labels = item.labels[rows]
        loss = sum(
            (
                nn.functional.cross_entropy(self.heads[_head_name(modality, name)](pooled), labels[:, column])
                for column, name in enumerate(item.attributes)
            ),
            torch.zeros(()),  # 0 + x is x exactly: the same sum as from int 0, typed as a tensor
        )
        tower = _head_name(modality, CAPTION)
        if tower in self.heads:
            loss = loss + self.caption_weight * self.contrast(pooled, self.heads[tower](item.captions[rows]))
        return loss


def _train_trunk(
    model: Any,
    objective: _Objective,
    data: Mapping[str, ModalityData],
    trunk: str,
    schedule: TrunkSchedule,
    weight_decay: float,
    generator: Any,
    log: Callable[[str], None],
) -> None:
    """``schedule.steps`` AdamW steps (warm-up, then cosine) on ``trunk`` and its modalities' heads."""
    import torch

    from anymodal.train.schedule import make_scheduler

    names = [modality for modality, _, _ in schedule.modalities]
    parameters = [
        parameter for name, parameter in model.named_parameters() if name.split(".")[1] == trunk
    ] + [parameter for modality in names for parameter in objective.parameters(modality, data[modality])]
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
        loss = objective.loss(modality, item, pooled, rows)
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
    """modality -> attribute -> the share of ``held_out`` files whose head picks the right class;
    for a modality with a caption tower also ``caption_recall_at_1``, the share of its files whose
    own caption is the nearest of all the held-out files' captions."""
    import torch

    from anymodal.bind.objective import recall_at

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
            tower = _head_name(modality, CAPTION)
            if tower in heads and item.captions is not None:
                found = recall_at(pooled, heads[tower](item.captions), ks=(1,))
                accuracy[modality]["caption_recall_at_1"] = round(found["bound_to_target_recall_at_1"], 4)
    return accuracy
