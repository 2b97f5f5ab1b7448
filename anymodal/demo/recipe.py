"""The recipe that makes anymodal's built-in default model, end to end and seeded.

    python -m anymodal.demo.recipe WORKDIR [--package DIR] [--quick] [--encoder WEIGHTS]
                                   [--several-inputs]

1. the world: ``anymodal demo-data`` for training (seed 0) and held-out (seed 1) files, and more
   images (seed 2) for the encoder alone; the training data (``world/train.jsonl``) is the
   world's conversations (with ``--several-inputs``, several-input ones too:
   :mod:`anymodal.demo.multi`) and some text-only ones (:mod:`anymodal.demo.small_talk`);
2. the encoder: a small ImageBind whose trunks are pre-trained on the world's attributes
   (:mod:`anymodal.demo.encoder`), or ``--encoder``'s weights, reused as they are;
3. the LLM: a BPE tokenizer and a small Llama trained on the world's text (``world/llm.jsonl``:
   the training data, and with ``--several-inputs`` more several-input records' text),
   tokenised as the demo config's prompts are (:mod:`anymodal.demo.llm`);
4. ``anymodal train`` on ``configs/demo.yaml``: stage 1 (projectors), then stage 2 (projectors
   and LoRA);
5. packaging: the LoRA merged into the LLM, and the model written as a self-contained model
   directory (``anymodal.yaml`` with relative paths), by default into ``WORKDIR/model``;
   ``--package anymodal/models/demo`` replaces the shipped one;
6. ``anymodal eval`` of the packaged model on the held-out world.

Every step is seeded; on the same machine and library versions the recipe reproduces the shipped
weights (docs/demo.md has the timings and the figures).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.contract.errors import AnymodalError
from anymodal.demo.encoder import EncoderRecipe
from anymodal.demo.llm import LLMRecipe

if TYPE_CHECKING:
    from anymodal.contract.registry import Registry

#: The training data, beside the world's conversations.jsonl (media paths are relative to the world).
TRAINING_DATA = "train.jsonl"
#: The LLM's text pre-training data, there too: the training data and :attr:`Recipe.llm_multi`.
LLM_DATA = "llm.jsonl"

#: The demo model's notice, shown when a chat starts.
NOTICE = (
    "This is anymodal's built-in demo model. It knows only anymodal's synthetic world: shapes and "
    "colours in images, moving shapes in video, tones, near and far objects in depth maps, hot and "
    "cold objects in thermal images, and still, walking, running or spinning motion. For real "
    "inputs, use real weights (see the README)."
)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the demo model, with the shipped values as defaults."""

    files_per_modality: int = 4000
    held_out_per_modality: int = 200
    #: Files drawn (seed + 2) only for the encoder's pre-training, on top of the world's: small
    #: shapes in 64-pixel pictures take many pictures to learn without memorising them.
    encoder_extra: tuple[tuple[str, int], ...] = (("image", 16000),)
    #: Text-only conversations added to the training data (:mod:`anymodal.demo.small_talk`).
    small_talk: int = 600
    #: Records of each several-input kind (:mod:`anymodal.demo.multi`) in the training world, and in
    #: the held-out one; 0 in the shipped model (:meth:`several_inputs` sets them).
    multi: int = 0
    held_out_multi: int = 0
    #: Several-input records (kind name, records of each size) whose text is added to the LLM's
    #: pre-training alone, drawn as the world's are (so the first ``multi`` repeat the world's).
    llm_multi: tuple[tuple[str, int], ...] = ()
    seed: int = 0
    llm: LLMRecipe = field(default_factory=LLMRecipe)
    encoder: EncoderRecipe = field(default_factory=EncoderRecipe)
    stage1: tuple[str, ...] = ("train.stage=1", "train.max_steps=600", "train.optimizer.lr=3e-3")
    stage2: tuple[str, ...] = ("train.stage=2", "train.max_steps=3000", "train.optimizer.lr=2e-3")

    def several_inputs(self) -> Recipe:
        """The recipe with several-input conversations, not shipped yet (docs/demo.md has its runs).

        1000 records of each kind: with 2000 the model lost image colour. 15000 more records of
        each size of the kinds that end in a verdict in the LLM's pre-training, for 8000 steps:
        the verdict (which image shows the named colour, are the two shapes the same, does the
        sound do what the shape does) is a text skill, comparing words of the answer, that the
        stand-in LLM learns only after thousands of steps of such text, and stage 2's LoRA cannot
        give it. Stage 2 twice as long, for the larger world.
        """
        return replace(
            self,
            multi=1000,
            held_out_multi=100,
            llm_multi=(("which_colour", 15000), ("same_shape", 15000), ("together", 15000)),
            llm=replace(self.llm, steps=8000),
            stage2=(*self.stage2, "train.max_steps=6000"),
        )

    def quick(self) -> Recipe:
        """A few minutes' version for trying the pipeline; its model is much weaker."""
        return replace(
            self,
            files_per_modality=300,
            held_out_per_modality=20,
            encoder_extra=tuple((modality, 300) for modality, _ in self.encoder_extra),
            small_talk=40,
            multi=min(self.multi, 60),
            held_out_multi=min(self.held_out_multi, 10),
            llm_multi=tuple((name, min(count, 100)) for name, count in self.llm_multi),
            llm=replace(self.llm, steps=100),
            encoder=self.encoder.scaled(0.05),
            stage1=(*self.stage1, "train.max_steps=60"),
            stage2=(*self.stage2, "train.max_steps=100"),
        )


def run(
    workdir: Path,
    package: Path | None,
    recipe: Recipe,
    log: Callable[[str], None] = print,
    encoder: Path | None = None,
) -> dict[str, Any]:
    """Run the whole recipe in ``workdir``; returns the timings and the held-out evaluation.

    ``encoder``: ImageBind weights (a demo model's ``imagebind.safetensors``) to use, frozen, in
    place of step 2, as a real model's encoder is pre-trained once and reused; the steps after it
    are then the same as if the recipe had pre-trained those weights itself.
    """
    from anymodal.config import load_config
    from anymodal.contract.registry import load_registry
    from anymodal.demo.encoder import load_modalities, pretrain_encoder
    from anymodal.demo.llm import train_demo_llm
    from anymodal.demo.world import ATTRIBUTES, generate_world
    from anymodal.encoders.imagebind.checkpoint import load_imagebind
    from anymodal.train.trainer import Trainer

    registry = load_registry()
    workdir.mkdir(parents=True, exist_ok=True)
    world, held_out = workdir / "world", workdir / "held-out"
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 1)
        log(f"== {name}: {timings[name]:.0f} s")
        clock = now

    paths = _paths(workdir)
    loaded = load_config("demo", paths, registry=registry)
    imagebind = _imagebind_config(loaded.config)
    if encoder is not None:
        load_imagebind(encoder, _trunks(loaded.config), imagebind)  # refuses other weights, naming the file

    generate_world(world, recipe.files_per_modality, recipe.seed, overwrite=True, multi=recipe.multi)
    generate_world(
        held_out, recipe.held_out_per_modality, recipe.seed + 1, overwrite=True, multi=recipe.held_out_multi
    )
    extras = recipe.encoder_extra if encoder is None else ()
    extra = [workdir / f"encoder-{modality}" for modality, _ in extras]
    for folder, (modality, count) in zip(extra, extras, strict=True):
        generate_world(folder, count, recipe.seed + 2, [modality], overwrite=True)
    write_texts(world, recipe)
    lap("world")

    weights = workdir / "imagebind-demo.safetensors"
    accuracy: dict[str, Any] | None = None
    if encoder is None:
        data = load_modalities([world, *extra], loaded.config, registry, ATTRIBUTES, log)
        held_out_data = load_modalities([held_out], loaded.config, registry, ATTRIBUTES, log)
        accuracy = pretrain_encoder(data, held_out_data, imagebind, weights, recipe.encoder, log)
        log(f"encoder held-out accuracy: {json.dumps(accuracy)}")
        del data, held_out_data
    else:
        shutil.copyfile(encoder, weights)
        log(f"encoder: {encoder}, not pre-trained again")
    lap("encoder")

    llm_config = load_config("demo", [*paths, f"train.data.train={world / LLM_DATA}"], registry=registry)
    train_demo_llm(llm_config.config, registry, workdir / "llm", recipe.llm, log)
    lap("llm")

    for stage, overrides in (("stage1", recipe.stage1), ("stage2", recipe.stage2)):
        where = [f"train.output_dir={workdir / stage}"]
        if stage == "stage2":
            where.append(f"train.init_from={workdir / 'stage1'}")
        stage_config = load_config("demo", [*paths, *overrides, *where], registry=registry)
        result = Trainer(stage_config, registry, log=log).fit()
        lap(stage)
    assert result.last_checkpoint is not None

    target = package or workdir / "model"
    write_package(Path(result.last_checkpoint), workdir, target)
    lap("package")

    report = _evaluate(target, held_out, workdir / "eval.json", registry)
    lap("eval")
    summary = {"timings_s": timings, "encoder_accuracy": accuracy, "eval": report}
    (workdir / "recipe.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def write_texts(world: Path, recipe: Recipe) -> None:
    """The training data (:data:`TRAINING_DATA`) and the LLM's pre-training data (:data:`LLM_DATA`)
    beside ``world``'s conversations."""
    from anymodal.demo.multi import make_multi_records
    from anymodal.demo.small_talk import small_talk
    from anymodal.demo.world import CONVERSATIONS_FILE, MODALITIES

    conversations = (world / CONVERSATIONS_FILE).read_text(encoding="utf-8")
    talk = small_talk(recipe.small_talk, recipe.seed)
    training = conversations + "".join(json.dumps(record) + "\n" for record in talk)
    (world / TRAINING_DATA).write_text(training, encoding="utf-8", newline="\n")
    extra = []
    if recipe.llm_multi:
        records = [json.loads(line) for line in conversations.splitlines()]
        singles = [record for record in records if "sources" not in record["meta"]]
        for name, count in recipe.llm_multi:
            extra += make_multi_records(singles, count, recipe.seed, MODALITIES, [name])
    text = training + "".join(json.dumps(record) + "\n" for record in extra)
    (world / LLM_DATA).write_text(text, encoding="utf-8", newline="\n")


def _paths(workdir: Path) -> list[str]:
    """Overrides that point the demo preset's paths into ``workdir``."""
    paths = [
        f"model.llm.path={workdir / 'llm'}",
        f"train.data.train={workdir / 'world' / TRAINING_DATA}",
        f"train.data.eval={workdir / 'held-out' / 'conversations.jsonl'}",
        f"train.feature_cache={workdir / 'features'}",
    ]
    weights = workdir / "imagebind-demo.safetensors"
    from anymodal.demo.world import MODALITIES

    paths += [f"model.modalities.{name}.encoder.weights={weights}" for name in MODALITIES]
    return paths


def _imagebind_config(config: Any) -> Any:
    """The ImageBindConfig all the demo's modalities share (checked to be the same for each)."""
    from anymodal.encoders.imagebind.spec import ImageBindOptions

    found = {
        repr(settings.encoder.options.image_bind_config())
        for settings in config.model.modalities.values()
        if isinstance(settings.encoder.options, ImageBindOptions)
    }
    if len(found) != 1:
        raise ValueError("the demo recipe expects every modality to share one ImageBind configuration")
    first = next(iter(config.model.modalities.values()))
    return first.encoder.options.image_bind_config()


def _trunks(config: Any) -> list[str]:
    """The ImageBind trunks the demo's modalities use."""
    from anymodal.encoders.imagebind.spec import ImageBindOptions

    return sorted(
        {
            settings.encoder.options.trunk_for(name)
            for name, settings in config.model.modalities.items()
            if isinstance(settings.encoder.options, ImageBindOptions)
        }
    )


def write_package(checkpoint: Path, workdir: Path, target: Path) -> None:
    """A self-contained model directory from a stage-2 checkpoint: the LLM with the LoRA merged in,
    the encoder weights, the projectors and an anymodal.yaml with relative paths."""
    import yaml
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    base = AutoModelForCausalLM.from_pretrained(workdir / "llm")
    merged = PeftModel.from_pretrained(base, checkpoint / "adapter").merge_and_unload()
    merged.save_pretrained(staging / "llm")
    AutoTokenizer.from_pretrained(workdir / "llm").save_pretrained(staging / "llm")
    shutil.copyfile(workdir / "imagebind-demo.safetensors", staging / "imagebind.safetensors")
    shutil.copytree(checkpoint / "projectors", staging / "projectors")

    data = yaml.safe_load((checkpoint / "anymodal.yaml").read_text())
    data.pop("train", None)
    model = data["model"]
    model["llm"] = {"bridge": model["llm"]["bridge"], "path": "./llm"}
    for name, settings in model["modalities"].items():
        settings["encoder"]["weights"] = "./imagebind.safetensors"
        settings["projector"]["weights"] = f"./projectors/{name}.safetensors"
        settings["optional"] = True  # it still chats about the rest when a modality's plugin is missing
    model["notice"] = NOTICE
    header = (
        "# anymodal's built-in demo model (builtin:demo), the default model of `anymodal chat`.\n"
        "# Written by `python -m anymodal.demo.recipe`; see configs/demo.yaml and docs/demo.md.\n"
    )
    (staging / "anymodal.yaml").write_text(header + yaml.safe_dump(data, sort_keys=False))
    shutil.copyfile(checkpoint / "versions.json", staging / "versions.json")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _evaluate(model: Path, data: Path, output: Path, registry: Registry) -> dict[str, Any]:
    """``anymodal eval MODEL --data DATA --output OUTPUT``, run in this process."""
    from anymodal.eval.run import load_evaluation, report_dict, run_records, write_json
    from anymodal.runtime.chat import ChatSession

    loaded, dataset = load_evaluation(str(model), data, (), registry)
    run = run_records(ChatSession.from_config(loaded.config, registry), dataset.select())
    report = report_dict(loaded.source, dataset, run)
    write_json(output, report)
    return {"overall": report["overall"], "by_modality": report["by_modality"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m anymodal.demo.recipe", description=__doc__.split("\n")[0]
    )
    parser.add_argument("workdir", type=Path, help="where the world, runs and the model are written")
    parser.add_argument("--package", type=Path, help="write the model here (e.g. anymodal/models/demo)")
    parser.add_argument("--quick", action="store_true", help="a small, fast, weaker run of the same steps")
    parser.add_argument(
        "--encoder",
        type=Path,
        metavar="WEIGHTS",
        help="use these ImageBind weights (e.g. anymodal/models/demo/imagebind.safetensors) instead of "
        "pre-training the encoder",
    )
    parser.add_argument(
        "--several-inputs", action="store_true", help="with several-input conversations (not shipped yet)"
    )
    args = parser.parse_args(argv)
    if args.encoder is not None and not args.encoder.is_file():
        parser.error(f"--encoder: no such file: {args.encoder}")
    recipe = Recipe().several_inputs() if args.several_inputs else Recipe()
    recipe = recipe.quick() if args.quick else recipe
    started = time.perf_counter()
    try:
        summary = run(args.workdir, args.package, recipe, functools.partial(print, flush=True), args.encoder)
    except AnymodalError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(f"recipe done in {time.perf_counter() - started:.0f} s: {json.dumps(summary['eval']['overall'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
