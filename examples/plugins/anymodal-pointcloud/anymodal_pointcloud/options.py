"""What the loader, the preprocessing and the encoder share: the file layout's limits, the default
number of points, and the encoder's options (``modalities.pointcloud.encoder.options``).

Kept apart from the loader and the encoder so that registering the plugin imports neither numpy
nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import anymodal

#: Numbers per point in a pointcloud file: x, y, z.
CHANNELS = 3

#: Fewer points than this are not a scan (a lidar sweep has tens of thousands).
MIN_POINTS = 16

#: More points than this are refused before the data is read (a 128-beam sweep has ~260,000);
#: tests lower it.
MAX_POINTS = 1_000_000

#: Points per input after preprocessing, by default; ``modalities.pointcloud.preprocess.num_points``
#: changes it.
DEFAULT_NUM_POINTS = 512


@dataclass(frozen=True)
class PointNetOptions:
    """Options of the ``pointnet`` encoder; anymodal checks the config's keys and types against
    these fields, and the values are checked here when the options are made."""

    #: Width of the per-point features, and so of every token (``feature_dim``).
    width: int = 256
    #: Width of the pooled vector (``pooled_dim``). Set it to another encoder's pooled width to
    #: share a projector's input size with it (the demo model's ImageBind pools to 64).
    embed_dim: int = 64
    #: Tokens per input: the points are grouped around this many farthest-point-sampled centres
    #: and each group is max-pooled into one token.
    tokens: int = 16
    #: Seed of the random initialisation (used when no weights file is given).
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "embed_dim", "tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise anymodal.UsageError(
                    f"pointnet encoder option {name} must be a positive integer, got {value!r}",
                    hint=f"set modalities.pointcloud.encoder.options.{name}",
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise anymodal.UsageError(
                f"pointnet encoder option seed must be an integer, got {self.seed!r}",
                hint="set modalities.pointcloud.encoder.options.seed",
            )
