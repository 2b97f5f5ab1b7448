"""Point clouds of the demo shapes: well-formed, reproducible, varied, on the surface they claim
(give or take their noise), and telling the four shapes apart -- learnably, not trivially.

The parameters a cloud returns are enough to undo its pose, so the geometry is checked in the
object's own frame, against the slab's surface computed here from scratch. A cloud given a scene's
pose (a picture's placement) lies where the picture's shape lies, mapped into metres.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anymodal.demo.pointcloud import (
    SCENE_SIDE_M,
    CloudPose,
    PointCloudOptions,
    point_cloud,
    save_point_cloud,
    synthesize_point_cloud,
)
from anymodal.demo.shapes import Placement, vertices
from anymodal.demo.vocabulary import SHAPES

#: No jitter, no occluder, no strays: every point exactly on the slab's surface.
EXACT = PointCloudOptions(jitter=(0.0, 0.0), occlusion_chance=0.0, outlier_chance=0.0)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_cloud_is_float32_n_by_3_with_a_count_in_range(shape: str) -> None:
    for seed in range(5):
        points, params = synthesize_point_cloud(shape, np.random.default_rng(seed))
        assert points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 3
        assert 300 <= len(points) <= 1500 and len(points) == params["points"]
        assert np.isfinite(points).all()


def test_the_same_seed_gives_the_same_cloud_and_another_seed_another() -> None:
    first, params = synthesize_point_cloud("star", np.random.default_rng(7))
    again, params_again = synthesize_point_cloud("star", np.random.default_rng(7))
    assert np.array_equal(first, again) and params == params_again
    other = point_cloud("star", np.random.default_rng(8))
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_a_seed_poses_every_shape_alike() -> None:
    drawn = [synthesize_point_cloud(shape, np.random.default_rng(3))[1] for shape in SHAPES]
    nuisance = [{k: v for k, v in params.items() if k not in ("shape", "star_ratio")} for params in drawn]
    assert all(params == nuisance[0] for params in nuisance)


def test_clouds_vary_in_count_size_place_and_noise() -> None:
    drawn = [synthesize_point_cloud("square", np.random.default_rng(seed)) for seed in range(40)]
    counts = [len(points) for points, _ in drawn]
    extents = [float(np.ptp(points, axis=0).max()) for points, _ in drawn]
    centres = np.array([np.median(points, axis=0) for points, _ in drawn])
    assert len(set(counts)) >= 35 and max(counts) - min(counts) > 700
    assert max(extents) > 2 * min(extents)
    assert centres.std(axis=0).min() > 0.3
    jitters = [params["jitter"] for _, params in drawn]
    assert max(jitters) > 3 * min(jitters)
    assert any(params["occluded"] for _, params in drawn) and not all(
        params["occluded"] for _, params in drawn
    )
    assert any(params["outliers"] for _, params in drawn) and not all(
        params["outliers"] for _, params in drawn
    )
    tilts = [params["tilt_deg"] for _, params in drawn]
    assert 20 < max(tilts) <= 35 and min(tilts) >= 0


@pytest.mark.parametrize("shape", ["circle", "square"])
def test_without_noise_every_point_is_on_the_slab_walls_and_faces_alike(shape: str) -> None:
    for seed in range(5):
        points, params = synthesize_point_cloud(shape, np.random.default_rng(seed), EXACT)
        local = _local(points, params)
        assert np.abs(_distance_to_surface(local, shape, params["thickness"])).max() < 1e-5
        on_faces = np.isclose(np.abs(local[:, 2]), params["thickness"] / 2, atol=1e-5)
        assert abs(1 - on_faces.mean() - params["wall_share"]) < 0.01
        assert np.isclose(local[on_faces, 2], params["thickness"] / 2, atol=1e-5).mean() == pytest.approx(
            0.5, abs=0.1
        )


def test_a_circle_is_round_not_a_polygon() -> None:
    options = PointCloudOptions(
        jitter=(0.0, 0.0), occlusion_chance=0.0, outlier_chance=0.0, wall_share=(1, 1)
    )
    points, params = synthesize_point_cloud("circle", np.random.default_rng(0), options)
    radius = np.hypot(*_local(points, params)[:, :2].T)
    assert np.allclose(radius, 0.5, atol=1e-5)


def test_noise_moves_points_off_the_surface_by_about_the_jitter() -> None:
    for seed in range(6):
        options = PointCloudOptions(outlier_chance=0.0)
        points, params = synthesize_point_cloud("circle", np.random.default_rng(seed), options)
        residual = np.abs(_distance_to_surface(_local(points, params), "circle", params["thickness"]))
        assert (residual > 1e-4).mean() > 0.9  # not exactly on the surface
        assert 0.3 * params["jitter"] < np.median(residual) < 1.5 * params["jitter"]


def test_an_occluder_hides_one_side_and_the_count_still_holds() -> None:
    options = PointCloudOptions(
        jitter=(0.0, 0.0), occlusion_chance=1.0, outlier_chance=0.0, points=(800, 800)
    )
    for seed in range(4):
        points, params = synthesize_point_cloud("circle", np.random.default_rng(seed), options)
        assert len(points) == 800 and 0.1 <= params["occluded"] <= 0.35
        side = math.radians(params["occluded_side_deg"])
        reach = _local(points, params)[:, :2] @ np.array([math.cos(side), math.sin(side)])
        assert reach.max() < 0.45 and reach.min() < -0.49


def test_stray_points_are_off_the_surface_and_counted() -> None:
    options = PointCloudOptions(
        jitter=(0.0, 0.0), occlusion_chance=0.0, outlier_chance=1.0, outliers=(0.03, 0.03)
    )
    points, params = synthesize_point_cloud("square", np.random.default_rng(5), options)
    assert params["outliers"] == round(0.03 * len(points))
    off = np.abs(_distance_to_surface(_local(points, params), "square", params["thickness"])) > 1e-4
    assert params["outliers"] - 2 <= off.sum() <= params["outliers"]


def test_simple_rotation_invariant_features_tell_the_shapes_apart() -> None:
    """Nearest centroid on three harmonics of the outline's radius profile, fitted on 200 clouds
    and scored on 200 others: well above chance (25 %), so an encoder can learn the shapes."""
    train, train_labels = _dataset(seed=1, count=200)
    test, test_labels = _dataset(seed=2, count=200)
    centroids = np.stack([train[train_labels == k].mean(axis=0) for k in range(len(SHAPES))])
    predicted = np.argmin(((test[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    accuracy = float((predicted == test_labels).mean())
    print(f"nearest-centroid accuracy on 200 clouds: {accuracy:.3f}")
    assert accuracy >= 0.6


def test_a_pose_from_a_placement_maps_the_picture_s_central_square_onto_the_plane() -> None:
    region = (20.0, 0.0, 200.0)  # a 240 x 200 canvas: its central square starts 20 px in
    centred = CloudPose.from_placement(Placement("square", 120.0, 100.0, 50.0, 7.5), region)
    assert centred == CloudPose(size=1.0, spin_deg=7.5, offset_x=0.0, offset_y=0.0)
    corner = CloudPose.from_placement(Placement("star", 20.0, 0.0, 20.0, -3.0, 0.4), region)
    half = SCENE_SIDE_M / 2
    assert corner == CloudPose(size=0.4, spin_deg=-3.0, offset_x=-half, offset_y=half, star_ratio=0.4)
    with pytest.raises(ValueError, match="side"):
        CloudPose.from_placement(Placement("circle", 1.0, 1.0, 1.0), (0, 0, 0))
    with pytest.raises(ValueError, match="positive size"):
        CloudPose(size=0.0, spin_deg=0.0, offset_x=0.0, offset_y=0.0)
    with pytest.raises(ValueError, match="ratio"):
        CloudPose(size=1.0, spin_deg=0.0, offset_x=0.0, offset_y=0.0, star_ratio=1.5)


@pytest.mark.parametrize("shape", ["square", "triangle", "star"])
def test_a_posed_cloud_lies_on_the_picture_s_outline_mapped_into_metres(shape: str) -> None:
    """Walls only, flat, no noise: seen from +z, every point is on the picture's own outline (its
    corners from :func:`vertices`, pixels to metres, y flipped), turned the picture's way."""
    region = (0.0, 30.0, 160.0)
    placement = Placement(shape, 50.0, 130.0, 40.0, 11.0, 0.42)
    options = PointCloudOptions(
        jitter=(0.0, 0.0), occlusion_chance=0.0, outlier_chance=0.0, wall_share=(1, 1), max_tilt_deg=0.0
    )
    pose = CloudPose.from_placement(placement, region)
    points, params = synthesize_point_cloud(shape, np.random.default_rng(4), options, pose)
    scale = SCENE_SIDE_M / region[2]
    corners = [((x - 80.0) * scale, (110.0 - y) * scale) for x, y in vertices(placement)]
    assert np.abs(_distance_to_outline(points[:, :2].astype(np.float64), np.array(corners))).max() < 1e-5
    assert params["pose"]["spin_deg"] == 11.0 and params["spin_deg"] == 11.0
    assert params["size"] == pose.size == 1.0 and params["offset"][:2] == [pose.offset_x, pose.offset_y]
    assert params["star_ratio"] == (0.42 if shape == "star" else None)


def test_a_pose_replaces_the_drawn_pose_and_leaves_every_other_draw_alone() -> None:
    pose = CloudPose(size=1.3, spin_deg=-8.0, offset_x=0.7, offset_y=-1.1, star_ratio=0.4)
    free, drawn = synthesize_point_cloud("star", np.random.default_rng(9))
    posed, used = synthesize_point_cloud("star", np.random.default_rng(9), pose=pose)
    again, used_again = synthesize_point_cloud("star", np.random.default_rng(9), pose=pose)
    assert np.array_equal(posed, again) and used == used_again
    assert len(posed) == len(free) and drawn["pose"] is None
    assert used["pose"] == {
        "size": 1.3,
        "spin_deg": -8.0,
        "offset_x": 0.7,
        "offset_y": -1.1,
        "star_ratio": 0.4,
    }
    assert (used["size"], used["spin_deg"], used["star_ratio"]) == (1.3, -8.0, 0.4)
    assert used["offset"] == [0.7, -1.1, drawn["offset"][2]]
    posed_keys = ("size", "spin_deg", "offset", "star_ratio", "pose")
    assert {k: v for k, v in used.items() if k not in posed_keys} == {
        k: v for k, v in drawn.items() if k not in posed_keys
    }
    centre = np.median(posed, axis=0)
    assert abs(centre[0] - 0.7) < 0.15 and abs(centre[1] + 1.1) < 0.15


def test_an_unknown_shape_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="circle, square, triangle, star"):
        point_cloud("hexagon", np.random.default_rng(0))


def test_options_pin_ranges_and_reject_empty_ones() -> None:
    assert len(point_cloud("triangle", np.random.default_rng(0), PointCloudOptions(points=(500, 500)))) == 500
    with pytest.raises(ValueError, match="points"):
        PointCloudOptions(points=(0, 10))
    with pytest.raises(ValueError, match="size"):
        PointCloudOptions(size=(2.0, 1.0))
    with pytest.raises(ValueError, match="occlusion_chance"):
        PointCloudOptions(occlusion_chance=1.5)


def test_a_saved_cloud_loads_back_equal(tmp_path: Path) -> None:
    points = point_cloud("star", np.random.default_rng(11))
    path = tmp_path / "star.npy"
    save_point_cloud(path, points)
    loaded = np.load(path, allow_pickle=False)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, points)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        save_point_cloud(tmp_path / "flat.npy", points[:, :2])


# --- helpers -------------------------------------------------------------------------------------


def _local(points: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """``points`` back in the object's own frame (bounding size 1, plane z = 0), from ``params``."""
    tilt_axis = math.radians(params["tilt_axis_deg"])
    axis = np.array([math.cos(tilt_axis), math.sin(tilt_axis), 0.0])
    rotation = _turn(axis, math.radians(params["tilt_deg"])) @ _turn(
        np.array([0.0, 0.0, 1.0]), math.radians(params["spin_deg"])
    )
    return (points.astype(np.float64) - np.asarray(params["offset"])) @ rotation / params["size"]


def _turn(axis: np.ndarray, angle: float) -> np.ndarray:
    """The matrix turning by ``angle`` radians about unit ``axis`` (right-handed)."""
    outer = np.outer(axis, axis)
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return math.cos(angle) * np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * outer


def _distance_to_surface(local: np.ndarray, shape: str, thickness: float) -> np.ndarray:
    """Signed distance of each point to a circle's or square's slab of size 1 (negative inside)."""
    if shape == "circle":
        excess = np.column_stack(
            [np.hypot(local[:, 0], local[:, 1]) - 0.5, np.abs(local[:, 2]) - thickness / 2]
        )
    else:
        excess = np.abs(local) - np.array([0.5, 0.5, thickness / 2])
    outside = np.linalg.norm(np.maximum(excess, 0.0), axis=1)
    return outside + np.minimum(excess.max(axis=1), 0.0)


def _distance_to_outline(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Each 2-D point's distance to the nearest edge of the closed polygon ``corners``."""
    ends = np.roll(corners, -1, axis=0)
    edge = ends - corners  # [K, 2]
    rel = points[:, None, :] - corners[None]  # [N, K, 2]
    along = np.clip((rel * edge).sum(axis=2) / (edge**2).sum(axis=1), 0.0, 1.0)
    gap = rel - along[:, :, None] * edge[None]
    return np.linalg.norm(gap, axis=2).min(axis=1)


def _dataset(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(SHAPES)
    return np.stack([_features(point_cloud(SHAPES[label], rng)) for label in labels]), labels


def _features(points: np.ndarray, bins: int = 48) -> np.ndarray:
    """Rotation-invariant: undo the tilt (the plane is the two widest principal axes), take the
    outline's radius per direction about the centre (85th percentile of each angular bin), and
    return the 3rd, 4th and 5th harmonics of that profile relative to its mean -- a triangle's,
    a square's and a star's symmetry; a circle has none."""
    centred = points.astype(np.float64) - np.median(points, axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    plane = centred @ axes[:2].T
    radius = np.hypot(plane[:, 0], plane[:, 1])
    which = ((np.arctan2(plane[:, 1], plane[:, 0]) + math.pi) / (2 * math.pi) * bins).astype(int) % bins
    profile = np.array(
        [np.percentile(radius[which == b], 85) if (which == b).any() else np.nan for b in range(bins)]
    )
    profile = np.where(np.isnan(profile), np.nanmean(profile), profile)
    spectrum = np.abs(np.fft.rfft(profile))
    return spectrum[[3, 4, 5]] / spectrum[0]
