"""The ``pointnet`` encoder: a PointNet-style network over ``[batch, points, 3]`` clouds.

* a shared per-point MLP ``3 -> 64 -> 128 -> width`` (Linear, LayerNorm, GELU; no BatchNorm, so
  an input encodes the same alone as in any batch);
* ``features [batch, tokens, width]``: ``tokens`` centres are chosen by farthest-point sampling
  (first the point farthest from the centre, first index on ties), every point joins its nearest
  centre, and each group's per-point features are max-pooled into one token (then LayerNorm);
  tokens come in FPS order. A group left empty (only when the input has fewer distinct points
  than ``tokens``) is a token of zeros before the LayerNorm;
* ``pooled [batch, embed_dim]``: the max and the mean of the per-point features over all points,
  concatenated, LayerNorm, then a Linear to ``embed_dim``.

Random until trained: built under ``options.seed``. Weights load as a plain state dict of this
module (``modalities.pointcloud.encoder.weights``: a ``.safetensors`` file or a torch file of
tensors), which anymodal loads strictly; the keys are those of :meth:`PointNetEncoder.state_dict`.
"""

from __future__ import annotations

import anymodal
import torch
from torch import nn

from anymodal_pointcloud.options import CHANNELS, PointNetOptions

#: Widths of the per-point MLP's hidden layers; its output is ``options.width``.
HIDDEN = (64, 128)


class PointNetEncoder(nn.Module):
    """``[batch, points, 3]`` -> ``EncoderOutput(features [batch, tokens, width], pooled [batch, embed_dim])``."""

    def __init__(self, options: PointNetOptions) -> None:
        super().__init__()
        self.tokens = options.tokens
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            layers: list[nn.Module] = []
            width_in = CHANNELS
            for width_out in HIDDEN:
                layers += [nn.Linear(width_in, width_out), nn.LayerNorm(width_out), nn.GELU()]
                width_in = width_out
            layers.append(nn.Linear(width_in, options.width))
            self.point_mlp = nn.Sequential(*layers)
            self.token_norm = nn.LayerNorm(options.width)
            self.head = nn.Sequential(
                nn.LayerNorm(2 * options.width), nn.Linear(2 * options.width, options.embed_dim)
            )
        self.geometry = anymodal.EncoderGeometry(
            feature_dim=options.width, num_tokens=options.tokens, pooled_dim=options.embed_dim
        )

    def forward(self, batch: torch.Tensor) -> anymodal.EncoderOutput:
        per_point = self.point_mlp(batch)  # [batch, points, width]
        pooled = self.head(torch.cat([per_point.amax(dim=1), per_point.mean(dim=1)], dim=-1))
        groups = nearest_centre(batch, farthest_points(batch, self.tokens))  # [batch, points]
        empty = torch.full(
            (batch.shape[0], self.tokens, per_point.shape[-1]),
            float("-inf"),
            dtype=per_point.dtype,
            device=per_point.device,
        )
        index = groups.unsqueeze(-1).expand_as(per_point)
        grouped = empty.scatter_reduce(1, index, per_point, reduce="amax", include_self=True)
        grouped = torch.where(torch.isfinite(grouped), grouped, torch.zeros_like(grouped))
        return anymodal.EncoderOutput(features=self.token_norm(grouped), pooled=pooled)


def farthest_points(points: torch.Tensor, count: int) -> torch.Tensor:
    """``[batch, points, 3]`` -> ``[batch, count]`` indices by farthest-point sampling, per input:
    the point farthest from the origin first, then the farthest from those chosen (first index on
    ties). With fewer points than ``count``, the last indices repeat the first point."""
    batch, size, _ = points.shape
    rows = torch.arange(batch, device=points.device)
    current = points.square().sum(-1).argmax(-1)
    nearest = torch.full((batch, size), float("inf"), dtype=points.dtype, device=points.device)
    chosen = torch.empty(batch, count, dtype=torch.long, device=points.device)
    for step in range(count):
        chosen[:, step] = current
        distance = (points - points[rows, current].unsqueeze(1)).square().sum(-1)
        nearest = torch.minimum(nearest, distance)
        nearest[rows, current] = -1.0
        current = nearest.argmax(-1)
    return chosen


def nearest_centre(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``[batch, points]``: the position in ``centres`` (``[batch, count]`` indices of ``points``)
    of the centre nearest each point (first on ties). Exact differences, not ``torch.cdist``'s
    matrix-product shortcut, so that an input's groups do not depend on its batch."""
    rows = torch.arange(points.shape[0], device=points.device).unsqueeze(1)
    positions = points[rows, centres]  # [batch, count, 3]
    distance = (
        (points.unsqueeze(2) - positions.unsqueeze(1)).square().sum(-1)
    )  # [batch, points, count]
    return distance.argmin(-1)
