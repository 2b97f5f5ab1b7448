"""ImageBind's promise, shown on the demo model: a sensor bound to the image embeddings with paired
samples alone is understood through the image projector, with no conversation about it trained on.

The synthetic world renders each scene as an image and, of the same scene, a lidar-style point
cloud (the same shape, size, rotation and position, with the sensor's own tilt, noise, density
and occlusion; no colour), a depth map and a thermal image of the same shape
(:mod:`anymodal.demo.pairs`); training and held-out scenes come from two seeds. For each sensor,
``anymodal bind`` trains its encoder on the training pairs (the point cloud: the example
third-party plugin's PointNet, ``examples/plugins/anymodal-pointcloud``, from scratch; depth and
thermal: the demo model's own ImageBind trunks, which were trained to tell distance and
temperature, not shape) to land where the demo model's frozen image encoder puts the paired
picture. Then, on the held-out scenes:

* retrieval: each sensor file's bound embedding against the embeddings of all the held-out
  pictures; recall@1 (chance: one over the number of scenes);
* zero-shot answers: the bound model (the bind checkpoint: the demo model with the sensor routed
  through its image projector, ``projector: {from: image, norm: ...}``) asked "What shape is
  this?" about each sensor file; right when the reply names the scene's shape and no other;
* the ceiling: the demo model asked the same about the paired pictures.

    python benchmarks/bind_demo.py                 # 800 training scenes, 200 held out, 30 epochs
    python benchmarks/bind_demo.py --quick         # the CI recipe: 600 and 100, pointcloud only
    python benchmarks/bind_demo.py --sensors pointcloud --frame sensor   # clouds keep place and size

The point cloud needs the example plugin installed
(``pip install examples/plugins/anymodal-pointcloud``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

QUESTION = "What shape is this?"
#: What each sensor's bind trains, and how.
SETTINGS: dict[str, list[str]] = {
    "pointcloud": [
        "model.modalities.pointcloud.encoder.options.embed_dim=64",
        "model.modalities.pointcloud.preprocess.num_points=256",
        "train.optimizer.lr=0.003",
    ],
    # Their trunks are small and fast: more epochs (a step takes a tenth of the point cloud's).
    "depth": ["train.optimizer.lr=0.001", "train.epochs=150"],
    "thermal": ["train.optimizer.lr=0.002", "train.epochs=250"],
}


def read_scenes(pairs: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in pairs.read_text().splitlines() if line.strip()]


def shape_named(reply: str, shape: str, shapes: Sequence[str]) -> bool:
    """Whether ``reply`` names ``shape`` and no other of ``shapes`` (as words)."""
    words = {word.strip(".,!?;:'\"").lower() for word in reply.split()}
    named = {s for s in shapes if s in words or f"{s}s" in words}
    return named == {shape}


def ask_all(model_source: str, modality: str, files: list[Path], max_batch: int = 16) -> list[str]:
    """The model's reply to :data:`QUESTION` about each file, decoded together."""
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.batching import ask_together
    from anymodal.runtime.chat import ChatSession

    registry = get_registry()
    session = ChatSession.from_config(load_config(model_source, [], registry).config, registry)
    asks = ((session.fork([session.model.prepare(modality, file)]), QUESTION) for file in files)
    replies: dict[int, str] = dict(ask_together(asks, max_batch))
    return [replies[i] for i in range(len(files))]


def retrieval(
    checkpoint: Path, modality: str, scenes: list[dict[str, Any]], folder: Path
) -> dict[str, float]:
    """Recall@1/5 of the bound embeddings of the held-out sensor files against their pictures'."""
    import torch

    from anymodal.bind.objective import recall_at
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.embedding import embed_files

    registry = get_registry()
    config = load_config(str(checkpoint), [], registry).config
    bound = embed_files([(modality, folder / s[modality]) for s in scenes], config, registry, batch_size=64)
    images = embed_files([("image", folder / s["image"]) for s in scenes], config, registry, batch_size=64)
    return recall_at(torch.stack([e.vector for e in bound]), torch.stack([e.vector for e in images]))


def bind_sensor(
    sensor: str, train_pairs: Path, work: Path, epochs: int, quiet: bool, extra: Sequence[str] = ()
) -> tuple[Path, float]:
    """``anymodal bind`` of ``sensor`` to the demo model's image embeddings, with ``extra`` overrides
    after the script's own: the checkpoint and seconds."""
    from anymodal.bind.binder import bind
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry

    overrides = [
        f"bind.modality={sensor}",
        "bind.target=image",
        f"bind.data={train_pairs}",
        "bind.eval_fraction=0.1",
        f"train.output_dir={work / f'bind-{sensor}'}",
        f"train.feature_cache={work / 'cache'}",
        "train.batch_size=64",
        f"train.epochs={epochs}",
        "train.save_every=0",
        "train.log_every=10",
        "train.schedule.warmup_ratio=0.05",
        *SETTINGS[sensor],
        *extra,
    ]
    registry = get_registry()
    loaded = load_config("builtin:demo", overrides, registry)
    started = time.perf_counter()
    result = bind(loaded, registry, log=(lambda _: None) if quiet else print)
    assert result.last_checkpoint is not None
    return result.last_checkpoint, time.perf_counter() - started


def run(
    sensors: Sequence[str],
    train: int,
    held_out: int,
    epochs: int,
    work: Path,
    quiet: bool = True,
    frame: str = "object",
) -> dict[str, Any]:
    """The whole demo in ``work``; the figures. ``frame``: the point cloud's preprocessing frame
    (the plugin's ``preprocess.frame``: ``object``, centred and unit-scaled, or ``sensor``)."""
    from anymodal.demo.pairs import write_pairs
    from anymodal.demo.vocabulary import SHAPES

    train_pairs = write_pairs(work / "train", train, seed=1, sensors=sensors)
    held_pairs = write_pairs(work / "held-out", held_out, seed=2, sensors=sensors)
    scenes = read_scenes(held_pairs)
    folder = held_pairs.parent
    images = ask_all("builtin:demo", "image", [folder / s["image"] for s in scenes])
    ceiling = sum(shape_named(r, s["shape"], SHAPES) for r, s in zip(images, scenes, strict=True)) / len(
        scenes
    )
    figures: dict[str, Any] = {"train_scenes": train, "held_out_scenes": held_out, "image_ceiling": ceiling}
    for sensor in sensors:
        extra = [f"model.modalities.pointcloud.preprocess.frame={frame}"] if sensor == "pointcloud" else []
        checkpoint, seconds = bind_sensor(sensor, train_pairs, work, epochs, quiet, extra)
        replies = ask_all(str(checkpoint), sensor, [folder / s[sensor] for s in scenes])
        right = [shape_named(r, s["shape"], SHAPES) for r, s in zip(replies, scenes, strict=True)]
        figures[sensor] = {
            "bind_seconds": round(seconds, 1),
            **{k: round(v, 3) for k, v in retrieval(checkpoint, sensor, scenes, folder).items()},
            "zero_shot_shape_accuracy": round(sum(right) / len(right), 3),
            "examples": [f"{s['shape']}: {r}" for r, s in list(zip(replies, scenes, strict=True))[:4]],
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="the CI recipe: 600 scenes, 100 held out, pointcloud only"
    )
    parser.add_argument("--sensors", nargs="+", choices=sorted(SETTINGS), help="[pointcloud depth thermal]")
    parser.add_argument("--train", type=int, help="training scenes [800; 600 with --quick]")
    parser.add_argument("--held-out", type=int, help="[200; 100 with --quick]")
    parser.add_argument(
        "--epochs",
        type=int,
        default=30,
        help="the point cloud's [30] (depth and thermal: their SETTINGS, 150 and 250)",
    )
    parser.add_argument("--out", type=Path, help="keep the data and checkpoints here")
    parser.add_argument(
        "--frame",
        choices=["object", "sensor"],
        default="object",
        help="the point cloud's preprocessing frame: centred and unit-scaled, or as scanned [object]",
    )
    args = parser.parse_args()
    sensors = args.sensors or (["pointcloud"] if args.quick else ["pointcloud", "depth", "thermal"])
    train = args.train or (600 if args.quick else 800)
    held_out = args.held_out or (100 if args.quick else 200)
    with tempfile.TemporaryDirectory(prefix="anymodal-bind-demo-") as temporary:
        work = args.out or Path(temporary)
        figures = run(sensors, train, held_out, args.epochs, work, quiet=False, frame=args.frame)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
