"""Paired renderings of one demo scene in several sensors, for ``anymodal bind`` (docs/bind.md).

``write_pairs(out_dir, count, seed)`` draws ``count`` scenes. A scene is what the demo world draws
for an image file: a shape, a colour, a position and a size, from the image modality's balanced
schedule (so the four shapes come equally often, give or take one), rendered exactly as
``anymodal demo-data`` renders its images, so the demo model's image encoder sees the pictures it
was trained on. Each sensor then renders the same scene its own way:

* the point cloud (:mod:`~anymodal.demo.pointcloud`) scans the scene the picture shows, with
  everything a lidar sees of it: the shape (a star's inner radius too), its size, its turn in the
  picture's plane and its place in the picture (:meth:`CloudPose.from_placement
  <anymodal.demo.pointcloud.CloudPose.from_placement>`: the central square the image plugin keeps
  spans :data:`~anymodal.demo.pointcloud.SCENE_SIDE_M` metres of the x/y plane, y up). On top come
  the scanner's own nuisances (:data:`~anymodal.demo.pointcloud.SCENE_OPTIONS`): a tilt of the
  plane of up to 20 degrees, a distance along z, jitter, point count and density, an occluder,
  stray returns. It does not see colour or background;
* the depth map and the thermal image (the demo world's depth and thermal renderers, with their
  own placement, distance and temperature; those two attributes come from their modalities'
  balanced schedules too) share the shape with the picture, and only the shape.

``scenes.jsonl`` records the pose a cloud was given under ``pointcloud.render.pose`` (with
``size``, ``spin_deg`` and ``offset``, the values used, beside it).

On disk, under ``out_dir``::

    image/00000.png       the scene's picture (RGB png)
    pointcloud/00000.npy  float32 [N, 3], metres (save_point_cloud)
    depth/00000.png       16-bit png, millimetres
    thermal/00000.png     8-bit greyscale png
    pairs.jsonl           one line a scene
    scenes.jsonl          one line a scene: every attribute and every renderer's parameters

A line of ``pairs.jsonl`` names every file of its scene, relative to the file, and the shape::

    {"scene": 0, "shape": "star", "image": "image/00000.png", "pointcloud": "pointcloud/00000.npy",
     "depth": "depth/00000.png", "thermal": "thermal/00000.png"}

so one file serves ``anymodal bind`` for any of the sensors (``bind.modality: pointcloud`` reads
the ``pointcloud`` and ``image`` keys of each line and ignores the rest), and evaluation reads the
shape off the same line.

Reproducible to the byte: sensor ``s`` of scene ``i`` is drawn from its own generator,
``np.random.default_rng([seed, i, s's stream])``, and the schedules from generators of their own,
so a file does not depend on which other sensors are written, nor on ``count`` (the pairs of 12
scenes are a prefix of those of 1000).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anymodal.contract.errors import UsageError
from anymodal.demo.pictures import render_depth, render_image, render_thermal
from anymodal.demo.pointcloud import SCENE_OPTIONS, CloudPose, save_point_cloud, synthesize_point_cloud
from anymodal.demo.schedule import balanced_schedule
from anymodal.demo.shapes import Placement
from anymodal.demo.vocabulary import ATTRIBUTES
from anymodal.demo.world import chosen_names, prepare_output

__all__ = ["PAIRS_FILE", "SCENES_FILE", "SENSORS", "pair_path", "write_pairs"]

#: The sensors a scene can be rendered in besides its image, in the order they are written.
SENSORS: tuple[str, ...] = ("pointcloud", "depth", "thermal")
#: The target every sensor is paired with.
TARGET = "image"
PAIRS_FILE = "pairs.jsonl"
SCENES_FILE = "scenes.jsonl"
#: modality -> the suffix (without dot) of its files.
EXTENSIONS: dict[str, str] = {"image": "png", "pointcloud": "npy", "depth": "png", "thermal": "png"}
#: modality -> the third seed word of its files' generators (fixed, whichever sensors are chosen).
STREAMS: dict[str, int] = {"image": 0, "pointcloud": 1, "depth": 2, "thermal": 3}
#: Second seed word of the schedules' generators; scene indices stay below it, so the streams differ.
_SCHEDULE_STREAM = 2**32 - 1
#: The modalities whose attributes (the demo world's, :data:`ATTRIBUTES`) come from a schedule of
#: their own; the scene's shape is the image's.
_SCHEDULED: tuple[str, ...] = ("image", "depth", "thermal")


def pair_path(modality: str, scene: int) -> str:
    """Where ``modality``'s file of ``scene`` lives, relative to the pairs' folder (forward slashes)."""
    return f"{modality}/{scene:05d}.{EXTENSIONS[modality]}"


def write_pairs(out_dir: Path, count: int, seed: int, sensors: Sequence[str] = SENSORS) -> Path:
    """Write ``count`` scenes, each as an image and in every one of ``sensors``, to ``out_dir``
    (created if missing; it must hold nothing yet), with ``pairs.jsonl`` and ``scenes.jsonl``;
    return the path of ``pairs.jsonl``.

    sensors: some of :data:`SENSORS` (written in that order whatever the order given).
    Raises UsageError for a count below 1, a seed outside 0..2**32-1, an unknown or no sensor, or an
    ``out_dir`` that is a file or not empty.
    """
    chosen = chosen_names(sensors, SENSORS, "sensor")
    if count < 1:
        raise UsageError(f"the number of scenes must be at least 1, not {count}")
    if not 0 <= seed < 2**32:
        raise UsageError(f"the seed must be in 0..{2**32 - 1}, not {seed}")
    root = Path(out_dir)
    prepare_output(root, [TARGET, *chosen])
    schedules = {
        modality: _schedule(modality, count, seed) for modality in _SCHEDULED if modality in (TARGET, *chosen)
    }
    with (
        open(root / PAIRS_FILE, "w", encoding="utf-8", newline="\n") as pairs,
        open(root / SCENES_FILE, "w", encoding="utf-8", newline="\n") as scenes,
    ):
        for scene in range(count):
            attributes = {modality: schedule[scene] for modality, schedule in schedules.items()}
            line, description = _write_scene(root, scene, seed, chosen, attributes)
            pairs.write(json.dumps(line) + "\n")
            scenes.write(json.dumps(description) + "\n")
    return root / PAIRS_FILE


def _write_scene(
    root: Path, scene: int, seed: int, sensors: Sequence[str], attributes: Mapping[str, dict[str, str]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write every file of ``scene``; return its line of ``pairs.jsonl`` and of ``scenes.jsonl``."""
    shape = attributes[TARGET]["shape"]
    line: dict[str, Any] = {"scene": scene, "shape": shape}
    description: dict[str, Any] = {"scene": scene, "shape": shape}
    picture: dict[str, Any] = {}
    for modality in (TARGET, *sensors):  # the image first: the point cloud scans its scene
        relative = pair_path(modality, scene)
        rng = np.random.default_rng([seed, scene, STREAMS[modality]])
        path = root / relative
        mine = attributes.get(modality, {})
        if modality == "image":
            params = picture = render_image(mine, rng, path)
        elif modality == "depth":
            params = render_depth(mine, rng, path, shape=shape)
        elif modality == "thermal":
            params = render_thermal(mine, rng, path, shape=shape)
        else:
            pose = CloudPose.from_placement(Placement(**picture["placement"]), picture["region"])
            points, params = synthesize_point_cloud(shape, rng, SCENE_OPTIONS, pose)
            save_point_cloud(path, points)
        line[modality] = relative
        description[modality] = {"file": relative, "attributes": dict(mine), "render": params}
    return line, description


def _schedule(modality: str, count: int, seed: int) -> list[dict[str, str]]:
    """The demo world's balanced schedule of ``modality``'s attributes, ``count`` entries long."""
    rng = np.random.default_rng([seed, _SCHEDULE_STREAM, STREAMS[modality]])
    return balanced_schedule(ATTRIBUTES[modality], count, rng)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m anymodal.demo.pairs OUT_DIR COUNT [SEED] [SENSOR...]``: write the pairs there."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or not all(word.isdigit() for word in args[1:3]):
        print("usage: python -m anymodal.demo.pairs OUT_DIR COUNT [SEED] [SENSOR...]", file=sys.stderr)
        return 2
    seed = int(args[2]) if len(args) > 2 else 0
    sensors = args[3:] or SENSORS
    try:
        print(write_pairs(Path(args[0]), int(args[1]), seed, sensors))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
