"""Paired renderings of demo scenes: one line a scene, every file there and loadable, the same
shape in every sensor, the point cloud a scan of the picture's very scene (its place, size and turn
read back off the cloud track the picture's), shapes balanced, reproducible to the byte, readable
by ``anymodal bind``, and quick to write."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from anymodal.bind.data import read_pairs
from anymodal.contract.errors import UsageError
from anymodal.demo.pairs import PAIRS_FILE, SCENES_FILE, SENSORS, main, pair_path, write_pairs
from anymodal.demo.pointcloud import SCENE_SIDE_M, CloudPose, PointCloudOptions, synthesize_point_cloud
from anymodal.demo.shapes import Placement
from anymodal.demo.vocabulary import ATTRIBUTES, SHAPES

N = 24


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], float]:
    """24 scenes in every sensor, seed 0: the pairs file, its lines and the seconds it took."""
    root = tmp_path_factory.mktemp("pairs")
    start = time.perf_counter()
    path = write_pairs(root, N, seed=0)
    seconds = time.perf_counter() - start
    return path, read_lines(path), seconds


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def test_one_line_a_scene_naming_its_image_and_every_sensor(written):
    path, lines, _ = written
    assert path.name == PAIRS_FILE
    assert [line["scene"] for line in lines] == list(range(N))
    for line in lines:
        assert set(line) == {"scene", "shape", "image", *SENSORS}
        for modality in ("image", *SENSORS):
            assert line[modality] == pair_path(modality, line["scene"])
    for modality in ("image", *SENSORS):
        assert len(list((path.parent / modality).iterdir())) == N


def test_every_file_exists_and_loads_as_its_sensor_writes_it(written):
    path, lines, _ = written
    for line in lines:
        with Image.open(path.parent / line["image"]) as image:
            assert image.mode == "RGB" and min(image.size) >= 64
        with Image.open(path.parent / line["depth"]) as depth:
            millimetres = np.asarray(depth)
            assert millimetres.dtype == np.uint16 and millimetres.max() > 1000
        with Image.open(path.parent / line["thermal"]) as thermal:
            assert thermal.mode == "L"
        points = np.load(path.parent / line["pointcloud"], allow_pickle=False)
        assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 3
        assert 300 <= len(points) <= 1500 and np.isfinite(points).all()


def test_every_sensor_shows_the_scene_s_shape(written):
    path, lines, _ = written
    scenes = read_lines(path.parent / SCENES_FILE)
    assert [scene["scene"] for scene in scenes] == list(range(N))
    for line, scene in zip(lines, scenes, strict=True):
        shape = line["shape"]
        assert scene["shape"] == shape and scene["image"]["attributes"]["shape"] == shape
        assert set(scene["image"]["attributes"]) == set(ATTRIBUTES["image"])
        assert scene["image"]["render"]["placement"]["shape"] == shape
        assert scene["pointcloud"]["render"]["shape"] == shape
        assert scene["depth"]["render"]["placement"]["shape"] == shape
        assert scene["thermal"]["render"]["placement"]["shape"] == shape
        assert scene["depth"]["attributes"]["distance"] in ATTRIBUTES["depth"]["distance"]
        assert scene["thermal"]["attributes"]["temperature"] in ATTRIBUTES["thermal"]["temperature"]


def test_the_cloud_is_given_the_picture_s_pose_and_records_it(written):
    path, _, _ = written
    for scene in read_lines(path.parent / SCENES_FILE):
        image, cloud = scene["image"]["render"], scene["pointcloud"]["render"]
        pose = CloudPose.from_placement(Placement(**image["placement"]), image["region"])
        assert cloud["pose"] == {
            "size": pose.size,
            "spin_deg": pose.spin_deg,
            "offset_x": pose.offset_x,
            "offset_y": pose.offset_y,
            "star_ratio": pose.star_ratio,
        }
        assert cloud["size"] == pose.size and cloud["spin_deg"] == image["placement"]["angle"]
        assert cloud["offset"][:2] == [pose.offset_x, pose.offset_y]
        if scene["shape"] == "star":
            assert cloud["star_ratio"] == image["placement"]["ratio"]
        assert 0 <= cloud["tilt_deg"] <= 20 and cloud["occluded"] <= 0.2


def test_the_cloud_s_place_size_and_turn_read_back_track_the_picture_s(tmp_path):
    """Read off each cloud with nothing but its points (the plane by PCA about the median, then
    the in-plane centre, radius and k-fold turn) and compare with the picture's placement, in
    fractions of its central square: correlated above 0.9 across 80 scenes, each of them."""
    root = write_pairs(tmp_path, 80, seed=1, sensors=["pointcloud"]).parent
    pictured, read = [], []
    for scene in read_lines(root / SCENES_FILE):
        image = scene["image"]["render"]
        left, top, side = image["region"]
        placement = image["placement"]
        x, y = (placement["cx"] - left) / side - 0.5, 0.5 - (placement["cy"] - top) / side
        centre, radius, turn = _read_cloud(np.load(root / scene["pointcloud"]["file"]), scene["shape"])
        unit_radius, _ = _reference(scene["shape"])
        pictured.append([x, y, placement["size"] / side, placement["angle"]])
        read.append([*(centre / SCENE_SIDE_M), radius / unit_radius / SCENE_SIDE_M, turn])
    truth, found = np.array(pictured), np.array(read)
    turned = ~np.isnan(found[:, 3])  # a circle has no turn to read
    every = np.ones(len(truth), dtype=bool)
    correlation = {
        name: float(np.corrcoef(truth[rows, column], found[rows, column])[0, 1])
        for column, (name, rows) in enumerate([("x", every), ("y", every), ("size", every), ("turn", turned)])
    }
    print("cloud vs picture correlation:", {name: round(value, 3) for name, value in correlation.items()})
    assert min(correlation.values()) > 0.9, correlation
    assert np.abs(found[:, :2] - truth[:, :2]).max() < 0.1  # within a tenth of the square, always
    assert np.median(np.abs(found[turned, 3] - truth[turned, 3])) < 3.0  # degrees


def test_shapes_and_the_other_attributes_are_balanced(written):
    path, lines, _ = written
    shapes = Counter(line["shape"] for line in lines)
    assert set(shapes) == set(SHAPES) and max(shapes.values()) - min(shapes.values()) <= 2
    scenes = read_lines(path.parent / SCENES_FILE)
    for attribute, classes in ATTRIBUTES["image"].items():
        seen = Counter(scene["image"]["attributes"][attribute] for scene in scenes)
        assert set(seen) == set(classes), attribute
    distances = Counter(scene["depth"]["attributes"]["distance"] for scene in scenes)
    assert distances["near"] == distances["far"] == N // 2


def test_a_larger_run_stays_balanced(tmp_path):
    lines = read_lines(write_pairs(tmp_path, 100, seed=5, sensors=["pointcloud"]))
    shapes = Counter(line["shape"] for line in lines)
    assert set(shapes) == set(SHAPES) and max(shapes.values()) - min(shapes.values()) <= 2


def test_same_seed_same_bytes_other_seed_other_files(tmp_path):
    first, second, other = (
        write_pairs(tmp_path / name, 4, seed) for name, seed in (("a", 3), ("b", 3), ("c", 4))
    )
    assert files_of(first.parent) == files_of(second.parent)
    assert files_of(first.parent) != files_of(other.parent)
    assert first.read_bytes() != b""


def test_a_file_does_not_depend_on_the_count_nor_on_the_other_sensors(tmp_path, written):
    path, lines, _ = written
    small = write_pairs(tmp_path / "small", 5, seed=0, sensors=("thermal", "pointcloud"))
    assert read_lines(small) == [
        {key: line[key] for key in ("scene", "shape", "image", "pointcloud", "thermal")} for line in lines[:5]
    ]
    assert not (small.parent / "depth").exists()
    for name, data in files_of(small.parent).items():
        if name not in (PAIRS_FILE, SCENES_FILE):
            assert data == (path.parent / name).read_bytes(), name


def test_anymodal_bind_reads_the_pairs_of_every_sensor(written):
    path, _, _ = written
    for sensor in SENSORS:
        pairs = read_pairs(path, sensor, "image")
        assert len(pairs) == N
        assert all(pair.source.parent.name == sensor for pair in pairs)
        assert all(isinstance(pair.target, Path) and pair.target.parent.name == "image" for pair in pairs)


def test_a_small_run_is_quick(written):
    _, _, seconds = written
    assert seconds < 0.5 * N  # about 20 ms a scene here; the bound only catches a gross slowdown


def test_bad_requests_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="did you mean 'depth'"):
        write_pairs(tmp_path / "a", 2, 0, sensors=["deptj"])
    with pytest.raises(UsageError, match="no sensor"):
        write_pairs(tmp_path / "b", 2, 0, sensors=[])
    with pytest.raises(UsageError, match="at least 1"):
        write_pairs(tmp_path / "c", 0, 0)
    with pytest.raises(UsageError, match="seed"):
        write_pairs(tmp_path / "d", 2, -1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        write_pairs(tmp_path / "full", 2, 0)
    assert not (tmp_path / "a").exists()


def test_one_sensor_named_as_a_string_is_that_sensor(tmp_path):
    lines = read_lines(write_pairs(tmp_path, 2, 0, sensors="depth"))
    assert set(lines[0]) == {"scene", "shape", "image", "depth"}


def test_main_writes_the_pairs(tmp_path, capsys):
    assert main([str(tmp_path / "out"), "3", "1", "depth"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / PAIRS_FILE)
    assert len(read_lines(tmp_path / "out" / PAIRS_FILE)) == 3
    assert main([str(tmp_path / "out"), "3"]) == 2 and "not empty" in capsys.readouterr().err
    assert main([]) == 2


# --- reading a cloud back ------------------------------------------------------------------------

#: shape -> its symmetry (k-fold); a circle has none.
FOLDS = {"square": 4, "triangle": 3, "star": 5}


def _read_cloud(points: np.ndarray, shape: str) -> tuple[np.ndarray, float, float]:
    """From the points alone: the x/y of the object's centre (median), its 90th-percentile radius in
    its plane (the plane found by PCA, turned flat by the least rotation), and its turn in degrees
    (the phase of the k-fold harmonic against an unturned one's; NaN for a circle)."""
    cloud = points.astype(np.float64)
    centre = np.median(cloud, axis=0)
    centred = cloud - centre
    _, _, axes = np.linalg.svd(centred - centred.mean(axis=0), full_matrices=False)
    normal = axes[2] if axes[2][2] >= 0 else -axes[2]
    flat = centred @ _least_turn(normal).T
    radius = np.hypot(flat[:, 0], flat[:, 1])
    extent = float(np.percentile(radius, 90))
    if shape not in FOLDS:
        return centre[:2], extent, math.nan
    fold = FOLDS[shape]
    near = radius < 1.5 * extent  # strays far out would weigh most
    harmonic = np.sum(radius[near] ** 4 * np.exp(1j * fold * np.arctan2(flat[near, 1], flat[near, 0])))
    _, phase = _reference(shape)
    return (
        centre[:2],
        extent,
        math.degrees(math.remainder(float(np.angle(harmonic)) - phase, 2 * math.pi)) / fold,
    )


def _least_turn(normal: np.ndarray) -> np.ndarray:
    """The rotation taking unit ``normal`` (z >= 0) to +z about an axis in the xy plane."""
    axis = np.cross(normal, [0.0, 0.0, 1.0])
    sine = float(np.linalg.norm(axis))
    if sine < 1e-12:
        return np.eye(3)
    x, y, z = axis / sine
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + sine * cross + (1 - float(normal[2])) * cross @ cross


_REFERENCES: dict[str, tuple[float, float]] = {}


def _reference(shape: str) -> tuple[float, float]:
    """A flat, noiseless, unturned cloud of ``shape`` of size 1 at the origin: its 90th-percentile
    radius and its k-fold harmonic's phase (0 for a circle)."""
    if shape not in _REFERENCES:
        exact = PointCloudOptions(
            points=(4000, 4000), jitter=(0.0, 0.0), occlusion_chance=0.0, outlier_chance=0.0, max_tilt_deg=0.0
        )
        pose = CloudPose(size=1.0, spin_deg=0.0, offset_x=0.0, offset_y=0.0)
        points, _ = synthesize_point_cloud(shape, np.random.default_rng(0), exact, pose)
        flat = points[:, :2].astype(np.float64) - np.median(points[:, :2], axis=0)
        radius = np.hypot(flat[:, 0], flat[:, 1])
        fold = FOLDS.get(shape, 0)
        harmonic = np.sum(radius**4 * np.exp(1j * fold * np.arctan2(flat[:, 1], flat[:, 0])))
        _REFERENCES[shape] = (float(np.percentile(radius, 90)), float(np.angle(harmonic)) if fold else 0.0)
    return _REFERENCES[shape]
