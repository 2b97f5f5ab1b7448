"""Point clouds of the demo world: a lidar-style scan of one shape, a flat prism in space.

The object is a shape's outline from :mod:`~anymodal.demo.shapes` (the same corners
:func:`~anymodal.demo.shapes.vertices` gives a picture; a circle is a true circle, not a polygon)
extruded into a slab: a bounding size of 1 in its own frame, a thickness along z, centred on its
centre of mass. Points lie on its surface, on both faces (uniform over the area) and on the side
walls (uniform over the outline and the thickness), in a mix that varies from outline-heavy to
face-heavy. The slab is then posed: a turn in its plane, a tilt of the plane, a size, an offset.
Last come what a real scanner adds: Gaussian jitter, sometimes an occluder hiding one side of the
object (the points beyond a cut across the plane are gone, as from a single viewpoint with
something in front), and sometimes a few stray returns anywhere around it.

The pose is random (any turn, a size and an offset from the options' ranges), or a scene's: a
:class:`CloudPose` gives the object's size, its turn in the plane, its x/y offset and a star's
inner radius, and :meth:`CloudPose.from_placement` reads them off a picture's
:class:`~anymodal.demo.shapes.Placement`, so that a cloud scans the very scene an image shows (see
:data:`SCENE_SIDE_M` for the mapping). The tilt, the distance along z and every sensor nuisance stay
random either way; :data:`SCENE_OPTIONS` keeps them mild enough that the pose stays readable. The
tilt turns the plane about an axis in it through the object's centre (the least rotation taking
+z to the plane's normal), so it moves neither the centre nor the turn measured in the plane:
turning the plane flat again by the least rotation (its normal found by PCA, say) gives both back.

Every random choice is drawn from the caller's numpy Generator, in a fixed order, within the
ranges of a :class:`PointCloudOptions`; the same seed gives the same cloud. A pose replaces drawn
values without skipping their draws, so a seed draws the same nuisances with or without one. The
number of points returned is exactly the one drawn: the occluder's share is sampled on top and cut
away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anymodal.demo.shapes import STAR_RATIO, Placement, vertices

__all__ = [
    "SCENE_OPTIONS",
    "SCENE_SIDE_M",
    "CloudPose",
    "PointCloudOptions",
    "point_cloud",
    "save_point_cloud",
    "synthesize_point_cloud",
]

Range = tuple[float, float]


@dataclass(frozen=True)
class PointCloudOptions:
    """The ranges a cloud's nuisance parameters are drawn from (uniformly, unless said otherwise).

    points: number of points returned, both ends included.
    size: the object's bounding size (a circle's diameter, a square's side, ...) in metres.
    thickness: the slab's thickness, as a fraction of its size.
    wall_share: the share of surface points on the side walls (the rest are on the two faces):
      high is outline-heavy, low is surface-heavy.
    max_tilt_deg: largest tilt of the object's plane away from the xy plane, in degrees; the tilt
      is uniform over that cap of normal directions, about a random axis in the plane. The turn
      within the plane is always uniform over the full circle.
    offset: range of each coordinate of the object's centre, in metres.
    jitter: Gaussian noise sigma per coordinate, as a fraction of the object's size.
    occlusion_chance, occlusion: the chance that an occluder hides one side, and the share of the
      object's points it hides.
    outlier_chance, outliers: the chance of stray returns, and their share of all points; they lie
      uniformly in the object's bounding box grown by :attr:`outlier_margin` of its sides on each end.
    """

    points: tuple[int, int] = (300, 1500)
    size: Range = (0.5, 2.0)
    thickness: Range = (0.05, 0.2)
    wall_share: Range = (0.1, 0.7)
    max_tilt_deg: float = 35.0
    offset: Range = (-1.0, 1.0)
    jitter: Range = (0.002, 0.02)
    occlusion_chance: float = 0.3
    occlusion: Range = (0.1, 0.35)
    outlier_chance: float = 0.5
    outliers: Range = (0.0, 0.03)
    outlier_margin: float = 0.25

    def __post_init__(self) -> None:
        """Raise ValueError for an empty range or one outside what it may cover."""
        bounds: dict[str, tuple[float, float]] = {
            "points": (1, math.inf),
            "size": (0, math.inf),
            "thickness": (0, math.inf),
            "wall_share": (0, 1),
            "offset": (-math.inf, math.inf),
            "jitter": (0, math.inf),
            "occlusion": (0, 0.99),
            "outliers": (0, 0.99),
        }
        for name, (lowest, highest) in bounds.items():
            low, high = getattr(self, name)
            if not lowest <= low <= high <= highest:
                raise ValueError(f"{name} {(low, high)} must be a range within [{lowest}, {highest}]")
        if not (0 <= self.max_tilt_deg <= 90 and self.outlier_margin >= 0):
            raise ValueError("max_tilt_deg must lie in [0, 90] and outlier_margin must not be negative")
        if not (0 <= self.occlusion_chance <= 1 and 0 <= self.outlier_chance <= 1):
            raise ValueError("occlusion_chance and outlier_chance must lie in [0, 1]")


#: The ranges :func:`point_cloud` uses unless given others.
DEFAULT_OPTIONS = PointCloudOptions()

#: The nuisances of a scan of a posed scene (:mod:`anymodal.demo.pairs` uses them): a tilt of the
#: plane of at most 20 degrees, occluders hiding at most a fifth of the object and at most 2 %
#: strays, so that the object's place, size and turn in its plane stay readable off the cloud. The
#: other ranges are the defaults (size and the x/y offset come from the pose).
SCENE_OPTIONS = PointCloudOptions(max_tilt_deg=20.0, occlusion=(0.05, 0.2), outliers=(0.0, 0.02))

#: Metres that the side of a picture's central square (the part the image plugin keeps) spans in
#: a posed cloud's x/y plane: a shape of a fifth of the square is 0.8 m across, and one at the
#: square's left edge sits 2 m left of the origin.
SCENE_SIDE_M = 4.0


@dataclass(frozen=True)
class CloudPose:
    """Where a scene puts its object in a cloud's frame (metres; x right, y up, z towards the
    sensor): its bounding size, its turn in the plane in degrees (counter-clockwise as seen from
    +z, as a :class:`~anymodal.demo.shapes.Placement`'s angle is as seen on the picture), the x and y
    of its centre of mass, and for a star the ratio of its inner to its outer radius (None: drawn).
    """

    size: float
    spin_deg: float
    offset_x: float
    offset_y: float
    star_ratio: float | None = None

    def __post_init__(self) -> None:
        """Raise ValueError for a size that is not positive or a value that is not finite."""
        values = [self.size, self.spin_deg, self.offset_x, self.offset_y]
        if not all(math.isfinite(value) for value in values) or self.size <= 0:
            raise ValueError(f"a pose needs a positive size and finite values, not {self}")
        if self.star_ratio is not None and not 0 < self.star_ratio < 1:
            raise ValueError(f"a star's radius ratio must lie in (0, 1), not {self.star_ratio}")

    @classmethod
    def from_placement(
        cls, placement: Placement, region: Sequence[float], side_m: float = SCENE_SIDE_M
    ) -> CloudPose:
        """The pose of the scene a picture shows: ``placement`` (pixels, y down) within ``region``
        = (left, top, side) of its central square, mapped onto a square ``side_m`` metres wide
        centred on the origin, y up. The offset is the centre's position relative to the square's
        centre, the size the bounding size, both scaled by ``side_m / side``; the turn is the
        picture's, and so is a star's radius ratio."""
        left, top, side = (float(value) for value in region)
        if side <= 0:
            raise ValueError(f"a region's side must be positive, not {side}")
        scale = side_m / side
        return cls(
            size=round(placement.size * scale, 6),
            spin_deg=round(placement.angle, 6),
            offset_x=round((placement.cx - left - side / 2) * scale, 6),
            offset_y=round((top + side / 2 - placement.cy) * scale, 6),
            star_ratio=placement.ratio if placement.shape == "star" else None,
        )


def point_cloud(
    shape: str,
    rng: np.random.Generator,
    options: PointCloudOptions | None = None,
    pose: CloudPose | None = None,
) -> np.ndarray:
    """float32 ``[N, 3]``: a scan of one ``shape`` (see :func:`synthesize_point_cloud`), points only."""
    return synthesize_point_cloud(shape, rng, options, pose)[0]


def synthesize_point_cloud(
    shape: str,
    rng: np.random.Generator,
    options: PointCloudOptions | None = None,
    pose: CloudPose | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """float32 ``[N, 3]`` points of one ``shape`` in metres, in random order, and the parameters
    drawn (JSON-able).

    With the default :class:`PointCloudOptions`: 300-1500 points; a bounding size of 0.5-2 m and a
    thickness of 5-20 % of it; 10-70 % of the surface points on the side walls; any turn in the
    plane and a tilt of the plane of up to 35 degrees; the centre within 1 m of the origin on each
    axis; jitter of sigma 0.2-2 % of the size; in 30 % of clouds an occluder hiding 10-35 % of the
    object on one side; in half of all clouds 0-3 % stray points around it. A star's inner to outer
    radius ratio is drawn from :data:`anymodal.demo.shapes.STAR_RATIO`.

    pose: a scene's (:class:`CloudPose`): its size, turn, x/y offset and star ratio replace the
    drawn ones (which are still drawn, so the other draws do not shift); the tilt, the z offset
    and the noise stay random. The parameters returned then hold the pose under ``"pose"``
    (None without one); ``size``, ``spin_deg``, ``offset`` and ``star_ratio`` are the values used.

    Raises ValueError for a shape not in :data:`anymodal.demo.vocabulary.SHAPES`.
    """
    opts = options or DEFAULT_OPTIONS
    ratio = _draw(rng, STAR_RATIO)  # drawn for every shape, so a seed poses every shape alike
    if pose is not None and pose.star_ratio is not None:
        ratio = pose.star_ratio
    outline = Placement(shape, 0.0, 0.0, 1.0, 0.0, ratio)  # checks the name; only a star uses ratio
    count = int(rng.integers(opts.points[0], opts.points[1] + 1))
    size, thickness = _draw(rng, opts.size), _draw(rng, opts.thickness)
    wall_share = _draw(rng, opts.wall_share)
    spin = _draw(rng, (0.0, 360.0))
    tilt = round(
        math.degrees(math.acos(float(rng.uniform(math.cos(math.radians(opts.max_tilt_deg)), 1.0)))), 6
    )
    tilt_axis = _draw(rng, (0.0, 360.0))
    offset = [_draw(rng, opts.offset) for _ in range(3)]
    jitter = _draw(rng, opts.jitter)
    hidden = _draw(rng, opts.occlusion) if rng.random() < opts.occlusion_chance else 0.0
    hidden_side = _draw(rng, (0.0, 360.0))
    stray = _draw(rng, opts.outliers) if rng.random() < opts.outlier_chance else 0.0
    outliers = min(round(stray * count), count - 1)
    if pose is not None:
        size, spin, offset = pose.size, pose.spin_deg, [pose.offset_x, pose.offset_y, offset[2]]

    kept = count - outliers
    surface = _surface(outline, thickness, math.ceil(kept / (1.0 - hidden)), wall_share, rng)
    surface = _occlude(surface, kept, math.radians(hidden_side))
    rotation = _rotation(_axis(math.radians(tilt_axis)), math.radians(tilt)) @ _rotation(
        np.array([0.0, 0.0, 1.0]), math.radians(spin)
    )
    points = size * surface @ rotation.T + np.asarray(offset)
    points += rng.normal(0.0, jitter * size, size=points.shape)
    points = np.concatenate([points, _strays(points, outliers, opts.outlier_margin, rng)])
    points = points[rng.permutation(len(points))]
    params = {
        "shape": shape,
        "points": count,
        "size": size,
        "thickness": thickness,
        "star_ratio": ratio if shape == "star" else None,
        "wall_share": wall_share,
        "spin_deg": spin,
        "tilt_deg": tilt,
        "tilt_axis_deg": tilt_axis,
        "offset": offset,
        "jitter": jitter,
        "occluded": hidden,
        "occluded_side_deg": hidden_side if hidden else None,
        "outliers": outliers,
        "pose": None if pose is None else asdict(pose),
    }
    return points.astype(np.float32), params


def save_point_cloud(path: Path | str, points: np.ndarray) -> None:
    """Write ``points`` (``[N, 3]``) to ``path`` as a float32 ``.npy`` (no pickle)."""
    array = np.asarray(points, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"a point cloud is [N, 3], not {list(array.shape)}")
    with open(path, "wb") as file:
        np.save(file, array, allow_pickle=False)


def _surface(
    outline: Placement, thickness: float, count: int, wall_share: float, rng: np.random.Generator
) -> np.ndarray:
    """``[count, 3]`` points on the slab of ``outline`` (size 1) and ``thickness``, z in ±thickness/2:
    ``wall_share`` of them on the side walls, the rest on the faces, either face alike."""
    walls = round(wall_share * count)
    faces = count - walls
    if outline.shape == "circle":
        radius = outline.size / 2
        on_rim = _ring(radius, rng.uniform(0.0, 2 * math.pi, size=walls))
        on_faces = _ring(radius * np.sqrt(rng.random(size=faces)), rng.uniform(0.0, 2 * math.pi, size=faces))
    else:
        corners = _corners(outline)
        on_rim = _on_edges(corners, walls, rng)
        on_faces = _in_polygon(corners, faces, rng)
    wall_z = rng.uniform(-thickness / 2, thickness / 2, size=walls)
    face_z = np.where(rng.random(size=faces) < 0.5, -thickness / 2, thickness / 2)
    return np.concatenate([np.column_stack([on_rim, wall_z]), np.column_stack([on_faces, face_z])])


def _corners(outline: Placement) -> np.ndarray:
    """``[K, 2]`` corners of a polygonal outline, y up (a canvas' y grows down), centre at 0."""
    corners = np.asarray(vertices(outline), dtype=np.float64)
    return corners * np.array([1.0, -1.0])


def _ring(radius: np.ndarray | float, angle: np.ndarray) -> np.ndarray:
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])


def _on_edges(corners: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``[count, 2]`` points uniform along the closed polygon's edges (by length)."""
    ends = np.roll(corners, -1, axis=0)
    lengths = np.linalg.norm(ends - corners, axis=1)
    edge = rng.choice(len(corners), size=count, p=lengths / lengths.sum())
    along = rng.random(size=(count, 1))
    return corners[edge] + along * (ends[edge] - corners[edge])


def _in_polygon(corners: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``[count, 2]`` points uniform over the polygon's area, by a fan of triangles from its centre
    (every demo shape is star-shaped about its centre of mass, which is the origin)."""
    ends = np.roll(corners, -1, axis=0)
    areas = np.abs(corners[:, 0] * ends[:, 1] - corners[:, 1] * ends[:, 0]) / 2
    fan = rng.choice(len(corners), size=count, p=areas / areas.sum())
    u, v = rng.random(size=(2, count, 1))
    flip = (u + v) > 1  # fold the far half of the parallelogram back onto the triangle
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    return u * corners[fan] + v * ends[fan]


def _occlude(points: np.ndarray, keep: int, side: float) -> np.ndarray:
    """The ``keep`` points least far towards in-plane direction ``side`` (radians): all of them but
    those an occluder on that side hides."""
    if keep >= len(points):
        return points
    reach = points[:, 0] * math.cos(side) + points[:, 1] * math.sin(side)
    return points[np.argsort(reach, kind="stable")[:keep]]


def _strays(points: np.ndarray, count: int, margin: float, rng: np.random.Generator) -> np.ndarray:
    """``[count, 3]`` points uniform in the bounding box of ``points`` grown by ``margin`` of its sides."""
    low, high = points.min(axis=0), points.max(axis=0)
    grow = margin * (high - low)
    return rng.uniform(low - grow, high + grow, size=(count, 3))


def _axis(angle: float) -> np.ndarray:
    """The unit vector in the xy plane at ``angle`` radians from x."""
    return np.array([math.cos(angle), math.sin(angle), 0.0])


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation matrix about unit ``axis`` by ``angle`` radians."""
    x, y, z = axis
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def _draw(rng: np.random.Generator, bounds: Range) -> float:
    """A uniform draw from ``bounds``, rounded to 6 digits so the parameters returned are the ones used."""
    return round(float(rng.uniform(*bounds)), 6)
