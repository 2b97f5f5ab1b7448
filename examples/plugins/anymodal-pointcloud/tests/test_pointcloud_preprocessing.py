"""Preprocessing: centred, unit-scaled, resampled to ``num_points``; float32 and deterministic."""

from __future__ import annotations

from pathlib import Path

import anymodal
import numpy as np
import pytest
import torch
from anymodal.testing import fuzz_modality, prepare_file, registered_modality

import anymodal_pointcloud.plugin
from anymodal_pointcloud.loader import PRESAMPLE, farthest_point_order, load, normalize, preprocess


def cloud(points: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((points, 3)) * [4.0, 2.0, 0.5] + [30.0, -7.0, 1.5]).astype(
        np.float32
    )


def rows_of(tensor: torch.Tensor, reference: np.ndarray) -> np.ndarray:
    """For each row of ``tensor``, the index of the row of ``reference`` it equals (float32)."""
    table = reference.astype(np.float32)
    matches = (tensor.numpy()[:, None, :] == table[None, :, :]).all(-1)
    assert matches.any(1).all(), "a preprocessed point is not a point of the cloud"
    return matches.argmax(1)


@pytest.mark.parametrize("points", [16, 100, 512, 3000, PRESAMPLE * 512 + 1, 20_000])
def test_any_cloud_becomes_float32_num_points_by_3(points: int) -> None:
    tensor = preprocess(cloud(points))
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (512, 3)
    assert torch.isfinite(tensor).all()
    # The farthest point is always kept, so the cloud fills the unit ball exactly.
    assert tensor.norm(dim=1).max().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("points", [40, 3000, 20_000])
def test_the_same_cloud_gives_the_same_tensor(points: int) -> None:
    array = cloud(points)
    first, second = preprocess(array, num_points=64), preprocess(array.copy(), num_points=64)
    assert torch.equal(first, second)


def test_the_same_file_gives_the_same_tensor(tmp_path: Path) -> None:
    path = tmp_path / "scan.npy"
    np.save(path, cloud(20_000))
    spec = registered_modality(anymodal_pointcloud.plugin, "pointcloud")
    tensors = [prepare_file(spec, path, num_points=128) for _ in range(2)]
    assert torch.equal(tensors[0], tensors[1]) and tuple(tensors[0].shape) == (128, 3)
    assert torch.equal(tensors[0], preprocess(load(path), num_points=128))


def test_normalize_centres_on_the_centroid_and_scales_to_the_unit_ball() -> None:
    normal = normalize(cloud(1000))
    np.testing.assert_allclose(normal.mean(axis=0), 0.0, atol=1e-12)
    assert np.linalg.norm(normal, axis=1).max() == pytest.approx(1.0)


def test_moving_or_scaling_the_cloud_changes_nothing() -> None:
    array = cloud(3000).astype(np.float64)
    moved = (array * 2.5 + [100.0, -40.0, 3.0]).astype(np.float32)
    torch.testing.assert_close(
        preprocess(moved), preprocess(array.astype(np.float32)), atol=1e-5, rtol=0
    )


def test_the_sensor_frame_keeps_the_same_points_where_and_as_big_as_they_were() -> None:
    array = (cloud(3000).astype(np.float64) * 2.5 + [100.0, -40.0, 3.0]).astype(np.float32)
    kept = preprocess(array, num_points=256, frame="sensor")
    assert kept.dtype == torch.float32 and tuple(kept.shape) == (256, 3)
    # The points the object frame picks, in the file's own coordinates.
    picked = rows_of(preprocess(array, num_points=256), normalize(array))
    torch.testing.assert_close(kept, torch.from_numpy(array[picked]), atol=0, rtol=0)
    assert kept.mean(0)[0] > 90 and preprocess(array, num_points=256).abs().max() <= 1 + 1e-6


@pytest.mark.parametrize("frame", ["world", "", None, 1])
def test_a_bad_frame_is_a_usage_error_naming_the_choices(frame: object) -> None:
    with pytest.raises(anymodal.UsageError, match="frame must be one of object, sensor"):
        preprocess(cloud(100), num_points=64, frame=frame)  # type: ignore[arg-type]


def test_a_large_cloud_is_resampled_to_distinct_points_of_it() -> None:
    array = cloud(3000)
    tensor = preprocess(array, num_points=256)
    picked = rows_of(tensor, normalize(array))
    assert len(set(picked.tolist())) == 256


def test_a_thinned_cloud_is_a_subset_chosen_from_its_content() -> None:
    array = cloud(PRESAMPLE * 64 * 3)
    tensor = preprocess(array, num_points=64)
    assert len(set(rows_of(tensor, normalize(array)).tolist())) == 64
    # Another cloud of the same size is thinned differently (the seed comes from the points).
    other = cloud(len(array), seed=1)
    assert not torch.equal(preprocess(other, num_points=64), tensor)


def test_a_small_cloud_keeps_every_point_and_repeats_them_in_order() -> None:
    array = cloud(20)
    tensor = preprocess(array, num_points=64)
    assert tuple(tensor.shape) == (64, 3)
    assert sorted(rows_of(tensor[:20], normalize(array)).tolist()) == list(range(20))
    for index in range(64):
        assert torch.equal(tensor[index], tensor[index % 20])


def test_farthest_point_sampling_starts_farthest_out_and_breaks_ties_by_index() -> None:
    line = np.array([[x, 0.0, 0.0] for x in range(10)])
    # 9 is farthest from the origin, then 0; 4 and 5 are equally far from both: 4 comes first.
    assert farthest_point_order(line, 4).tolist() == [9, 0, 4, 2]
    assert sorted(farthest_point_order(line, 10).tolist()) == list(range(10))


def test_points_in_fps_order_come_first() -> None:
    array = cloud(1000)
    normal = normalize(array)
    expected = farthest_point_order(normal, 8)
    assert rows_of(preprocess(array, num_points=128)[:8], normal).tolist() == expected.tolist()


@pytest.mark.parametrize("num_points", [0, -5, 2.5, "512", True, 10**9])
def test_a_bad_num_points_is_a_usage_error(num_points: object) -> None:
    with pytest.raises(anymodal.UsageError, match="num_points"):
        preprocess(cloud(100), num_points=num_points)  # type: ignore[arg-type]


def test_damaged_clouds_give_only_anymodal_errors(tmp_path: Path) -> None:
    # More damaged versions than the conformance suite's 20, as the header is parsed twice.
    path = tmp_path / "scan.npy"
    np.save(path, cloud(200))
    spec = registered_modality(anymodal_pointcloud.plugin, "pointcloud")
    fuzz_modality(spec, path, examples=60)
