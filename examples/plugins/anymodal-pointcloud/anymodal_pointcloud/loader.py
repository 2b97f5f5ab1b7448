"""Reading and preprocessing point clouds: ``.npy`` arrays of shape ``[N, 3]``, one row per point
(x, y, z, in any unit), any integer or float dtype.

Every problem with a file is an :class:`anymodal.InputError` that names it and says what to do.

Preprocessing, deterministic (the same array always gives the same tensor):

1. centre the cloud on its centroid (the mean of its points);
2. scale it so that the point farthest from the centre is at distance 1;
3. resample it to exactly ``num_points`` points:

   * ``N > num_points``: farthest-point sampling (FPS), starting at the point farthest from the
     centre, first index on ties. Clouds of more than ``PRESAMPLE * num_points`` points are first
     thinned to that many by a random choice seeded from a SHA-256 of the points (the farthest
     point always kept), so FPS stays fast on a full sweep and the same file gives the same subset;
   * ``N <= num_points``: every point in FPS order, then repeated from the start of that order
     until there are ``num_points``.

The result is float32 ``[num_points, 3]``, its points in FPS order (spread out first).

With ``frame="sensor"`` the same points are returned as the file has them, neither moved nor
scaled: for scans that share one frame and unit (a fixed lidar, in metres), in which an object's
place and size are part of what the encoder should see. The default, ``frame="object"``,
makes every cloud look alike in place and size, for scans taken from anywhere.
"""

from __future__ import annotations

import hashlib
import math
import tokenize
from pathlib import Path

import anymodal
import numpy as np
import torch

from anymodal_pointcloud.options import CHANNELS, DEFAULT_NUM_POINTS, MAX_POINTS, MIN_POINTS

MODALITY = "pointcloud"

#: Clouds above ``PRESAMPLE * num_points`` points are thinned at random (content-seeded) before FPS.
PRESAMPLE = 16

#: The frames a preprocessed cloud can be in: its own (centred, unit-scaled) or the sensor's.
FRAMES = ("object", "sensor")

#: What numpy's header parser raises on a damaged header (its tokenizer and literal parser too).
_HEADER_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    TypeError,
    KeyError,
    MemoryError,
    RecursionError,
    tokenize.TokenError,
)

_SHAPE_HINT = (
    "save one row per point with numpy.save(path, points), points of shape [N, 3] (x, y, z)"
)


def load(path: Path) -> np.ndarray:
    """A float32 array ``[N, 3]`` with ``MIN_POINTS <= N <= MAX_POINTS`` finite points that do not
    all coincide; :class:`anymodal.InputError` naming the file for anything else."""
    # anymodal checks the file before calling a loader; checking again here keeps load() safe
    # to call on its own. The size cap is load_npy's, which knows the array's real size.
    file = anymodal.check_input_file(path, (), modality=MODALITY, max_mb=math.inf)
    declared = _declared_points(file)
    if declared is not None and declared > MAX_POINTS:  # refused before the data is read
        _check_point_count(declared, file)
    # load_npy refuses pickles, non-numeric dtypes, NaN and infinite values, truncated files and
    # arrays above the element cap, before it allocates anything.
    array = anymodal.load_npy(file, modality=MODALITY, max_elements=MAX_POINTS * CHANNELS)
    if array.ndim != 2 or array.shape[1] != CHANNELS:
        transposed = array.ndim == 2 and array.shape[0] == CHANNELS
        raise anymodal.InputError(
            f"pointcloud file must hold an array of shape [N, {CHANNELS}] (x, y, z per point), "
            f"got shape {list(array.shape)}: {file}",
            hint="it looks transposed: save points.T" if transposed else _SHAPE_HINT,
        )
    _check_point_count(array.shape[0], file)
    with np.errstate(over="ignore", invalid="ignore"):
        points = array.astype(np.float32)
    if not np.isfinite(points).all():
        raise anymodal.InputError(
            f"pointcloud file holds values beyond float32's range (about 3.4e38): {file}",
            hint="convert the coordinates to a sensible unit (metres) before saving",
        )
    if not (np.ptp(points.astype(np.float64), axis=0) > 0).any():
        raise anymodal.InputError(
            f"pointcloud file holds {len(points)} points that all coincide: {file}",
            hint="a scan needs points at different positions; check how the array was exported",
        )
    return points


def _declared_points(file: Path) -> int | None:
    """N, when a ``.npy`` header declares shape ``[N, 3]``, read with numpy's header parser
    (literal values only, no pickle); None for another shape or a header it cannot read (then
    load_npy, which comes next, reports what is wrong)."""
    try:
        with file.open("rb") as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape = np.lib.format.read_array_header_1_0(stream)[0]
            elif version == (2, 0):
                shape = np.lib.format.read_array_header_2_0(stream)[0]
            else:
                return None
    except _HEADER_ERRORS:  # any damage: load_npy, which comes next, says what it is
        return None
    if len(shape) != 2 or shape[1] != CHANNELS or not isinstance(shape[0], int):
        return None
    return shape[0]


def _check_point_count(count: int, file: Path) -> None:
    if count < MIN_POINTS:
        raise anymodal.InputError(
            f"pointcloud file holds {count} points, at least {MIN_POINTS} are needed: {file}",
            hint="pass a whole scan, not a handful of points",
        )
    if count > MAX_POINTS:
        raise anymodal.InputError(
            f"pointcloud file holds {count:,} points, the limit is {MAX_POINTS:,}: {file}",
            hint="downsample the scan first (a voxel grid, or every k-th point)",
        )


def normalize(points: np.ndarray) -> np.ndarray:
    """``[N, 3]`` -> float64 ``[N, 3]`` centred on the centroid, farthest point at distance 1."""
    cloud = np.asarray(points, dtype=np.float64)
    centred = cloud - cloud.mean(axis=0)
    radius = float(np.sqrt(np.einsum("ij,ij->i", centred, centred)).max())
    return centred / radius if radius > 0 else centred


def farthest_point_order(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` distinct points of ``[N, 3]`` chosen by farthest-point sampling: first
    the point farthest from the origin, then each time the point farthest from all chosen so far
    (the first index on ties)."""
    if not 1 <= count <= len(points):
        raise ValueError(f"count must be between 1 and {len(points)}, got {count}")
    nearest = np.einsum("ij,ij->i", points, points)  # squared distance to the origin, to start
    current = int(np.argmax(nearest))
    nearest = np.full(len(points), np.inf)
    chosen = np.empty(count, dtype=np.int64)
    for step in range(count):
        chosen[step] = current
        delta = points - points[current]
        np.minimum(nearest, np.einsum("ij,ij->i", delta, delta), out=nearest)
        nearest[current] = -1.0  # never chosen twice, even when points coincide
        current = int(np.argmax(nearest))
    return chosen


def _thinned(cloud: np.ndarray, size: int, points: np.ndarray) -> np.ndarray:
    """``size`` indices of ``cloud``, sorted, chosen at random with a seed taken from the points'
    bytes (so the same file always gives the same choice); the farthest point is always kept."""
    digest = hashlib.sha256(np.ascontiguousarray(points, dtype=np.float32).tobytes()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    picked = rng.choice(len(cloud), size=size, replace=False)
    farthest = int(np.argmax(np.einsum("ij,ij->i", cloud, cloud)))
    if farthest not in picked:
        picked[0] = farthest
    return np.sort(picked)


def preprocess(
    points: np.ndarray, num_points: int = DEFAULT_NUM_POINTS, frame: str = "object"
) -> torch.Tensor:
    """``[N, 3]`` -> float32 ``[num_points, 3]``: resampled and, in the ``object`` frame, centred and
    scaled to the unit ball; in the ``sensor`` frame, as recorded (see the module docstring)."""
    if (
        isinstance(num_points, bool)
        or not isinstance(num_points, int)
        or not 1 <= num_points <= MAX_POINTS
    ):
        raise anymodal.UsageError(
            f"pointcloud preprocess option num_points must be an integer from 1 to {MAX_POINTS:,}, "
            f"got {num_points!r}",
            hint="set modalities.pointcloud.preprocess.num_points, e.g. 512",
        )
    if frame not in FRAMES:
        raise anymodal.UsageError(
            f"pointcloud preprocess option frame must be one of {', '.join(FRAMES)}, got {frame!r}",
            hint="set modalities.pointcloud.preprocess.frame: object (centred, unit-scaled; the "
            "default) or sensor (as recorded)",
        )
    if points.ndim != 2 or points.shape[1] != CHANNELS or len(points) == 0:
        raise ValueError(f"expected points of shape [N, {CHANNELS}], got {list(points.shape)}")
    cloud = normalize(points)
    candidates = np.arange(len(cloud))
    if len(cloud) > PRESAMPLE * num_points:
        candidates = _thinned(cloud, PRESAMPLE * num_points, points)
    order = candidates[farthest_point_order(cloud[candidates], min(num_points, len(candidates)))]
    indices = order[np.arange(num_points) % len(order)]
    kept = cloud if frame == "object" else np.asarray(points, dtype=np.float64)
    return torch.from_numpy(np.ascontiguousarray(kept[indices], dtype=np.float32))
