"""The PointNet encoder: shapes, seeded initialisation, batch and order independence, checkpoints."""

from __future__ import annotations

from pathlib import Path

import anymodal
import pytest
import torch

from anymodal_pointcloud.encoder import PointNetEncoder, farthest_points, nearest_centre
from anymodal_pointcloud.options import PointNetOptions
from anymodal_pointcloud.plugin import build_encoder

SMALL = PointNetOptions(width=32, embed_dim=24, tokens=8)


def clouds(batch: int, points: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, points, 3, generator=generator)


def test_the_defaults_give_16_tokens_of_256_and_a_64_wide_pooled_vector() -> None:
    encoder = build_encoder("pointcloud", None).eval()
    assert encoder.geometry == anymodal.EncoderGeometry(
        feature_dim=256, num_tokens=16, pooled_dim=64
    )
    with torch.no_grad():
        output = encoder(clouds(2, 512))
    assert isinstance(output, anymodal.EncoderOutput)
    assert tuple(output.features.shape) == (2, 16, 256) and tuple(output.pooled.shape) == (2, 64)


@pytest.mark.parametrize("embed_dim", [16, 1024])
def test_embed_dim_sets_the_pooled_width(embed_dim: int) -> None:
    encoder = PointNetEncoder(PointNetOptions(width=32, embed_dim=embed_dim, tokens=4)).eval()
    with torch.no_grad():
        output = encoder(clouds(1, 64))
    assert encoder.geometry.pooled_dim == embed_dim and tuple(output.pooled.shape) == (1, embed_dim)
    assert tuple(output.features.shape) == (1, 4, 32)


def test_initialisation_is_seeded_whatever_torch_s_global_generator_holds() -> None:
    torch.manual_seed(123)
    first = PointNetEncoder(SMALL).state_dict()
    torch.manual_seed(456)
    second = PointNetEncoder(SMALL).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    other = PointNetEncoder(PointNetOptions(width=32, embed_dim=24, tokens=8, seed=1)).state_dict()
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_an_input_encodes_the_same_alone_and_in_a_batch() -> None:
    encoder = PointNetEncoder(SMALL).eval()
    batch = clouds(3, 128)
    with torch.no_grad():
        together = encoder(batch)
        alone = [encoder(batch[i : i + 1]) for i in range(3)]
    torch.testing.assert_close(together.features, torch.cat([a.features for a in alone]))
    torch.testing.assert_close(together.pooled, torch.cat([a.pooled for a in alone]))


def test_the_pooled_vector_ignores_the_order_of_the_points() -> None:
    encoder = PointNetEncoder(SMALL).eval()
    points = clouds(1, 200)
    shuffled = points[:, torch.randperm(200, generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        a, b = encoder(points), encoder(shuffled)
    torch.testing.assert_close(a.pooled, b.pooled, rtol=1e-5, atol=1e-6)
    # The centres are the same points, so the tokens are too (in the same FPS order).
    torch.testing.assert_close(a.features, b.features, rtol=1e-5, atol=1e-6)


def test_tokens_group_points_around_farthest_point_centres() -> None:
    # Two tight clusters far apart: two centres, one in each, every point joins its own cluster.
    spread = clouds(1, 20) * 0.01
    points = torch.cat([spread[:, :10] - 5.0, spread[:, 10:] + 5.0], dim=1)
    centres = farthest_points(points, 2)
    assert {int(c) < 10 for c in centres[0]} == {True, False}
    groups = nearest_centre(points, centres)[0]
    assert len(set(groups[:10].tolist())) == 1 and len(set(groups[10:].tolist())) == 1
    assert groups[0] != groups[10]


def test_fewer_distinct_points_than_tokens_still_give_finite_tokens() -> None:
    encoder = PointNetEncoder(SMALL).eval()
    points = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]).repeat(1, 4, 1)
    with torch.no_grad():
        output = encoder(points[:, :3])  # 3 points, 8 tokens
        repeated = encoder(points)  # 12 points, 3 distinct, 8 tokens
    assert tuple(output.features.shape) == (1, 8, 32) and torch.isfinite(output.features).all()
    assert torch.isfinite(repeated.features).all() and torch.isfinite(repeated.pooled).all()


@pytest.mark.parametrize("field", ["width", "embed_dim", "tokens"])
@pytest.mark.parametrize("value", [0, -1, True])
def test_bad_options_are_usage_errors(field: str, value: object) -> None:
    with pytest.raises(anymodal.UsageError, match=f"option {field} must be a positive integer"):
        PointNetOptions(**{field: value})  # type: ignore[arg-type]


def test_a_torch_checkpoint_of_the_state_dict_loads_back(tmp_path: Path) -> None:
    trained = PointNetEncoder(PointNetOptions(width=32, embed_dim=24, tokens=8, seed=3)).eval()
    checkpoint = tmp_path / "pointnet.pt"
    torch.save(trained.state_dict(), checkpoint)
    state = anymodal.load_torch_file(checkpoint, what="pointnet weights")
    fresh = PointNetEncoder(SMALL).eval()
    assert anymodal.state_dict_mismatches(fresh.state_dict(), state) == []
    fresh.load_state_dict(state, strict=True)
    points = clouds(2, 64)
    with torch.no_grad():
        assert torch.equal(fresh(points).pooled, trained(points).pooled)


def test_a_checkpoint_of_another_width_is_told_apart(tmp_path: Path) -> None:
    checkpoint = tmp_path / "wide.pt"
    torch.save(PointNetEncoder(PointNetOptions(width=64)).state_dict(), checkpoint)
    problems = anymodal.state_dict_mismatches(
        PointNetEncoder(SMALL).state_dict(), anymodal.load_torch_file(checkpoint)
    )
    assert problems and "wrong shape" in problems[0]
