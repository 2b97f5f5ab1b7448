"""The four shapes, where they go, and how much of each pixel they cover (antialiased).

A :class:`Placement` puts a shape on a canvas in pixels: its centre (the centre of mass, about
which it is rotated), its bounding size and its rotation. :func:`coverage` draws it at 4x and
downsamples with Lanczos, which gives the soft edges of a real rendering, and only within the
shape's bounding box, so a small shape on a large canvas costs little.

Sizes are "bounding sizes": a circle's diameter, a square's or a triangle's side, a star's outer
diameter. Triangles are equilateral and point up; stars have five points, the top one up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from anymodal.demo.vocabulary import SHAPES

__all__ = [
    "SUPERSAMPLE",
    "Outline",
    "Placement",
    "coverage",
    "extent",
    "paint",
    "place_in",
    "random_pose",
    "vertices",
]

#: Drawing scale before downsampling: 4x4 samples per pixel.
SUPERSAMPLE = 4
#: Largest rotation of a square, triangle or star, in degrees either way (circles are not turned).
MAX_ROTATION = 12.0
#: Range of a star's inner to outer radius ratio.
STAR_RATIO = (0.38, 0.5)
#: Output pixels of zero coverage kept around a shape's box, more than Lanczos' reach (3 pixels).
_PAD = 4


@dataclass(frozen=True)
class Placement:
    """A shape on a canvas, in pixels: centre of mass (cx, cy), bounding size, rotation in degrees
    (counter-clockwise as seen), and for a star the ratio of its inner to its outer radius."""

    shape: str
    cx: float
    cy: float
    size: float
    angle: float = 0.0
    ratio: float = 0.45

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; known: {', '.join(SHAPES)}")

    def moved(self, cx: float, cy: float) -> Placement:
        """The same shape with its centre at (cx, cy)."""
        return Placement(self.shape, cx, cy, self.size, self.angle, self.ratio)


@dataclass(frozen=True)
class Outline:
    """A dark line along a shape's edge: its width in pixels and its grey level."""

    width: float
    grey: int


def random_pose(shape: str, size: float, rng: np.random.Generator) -> Placement:
    """``shape`` of bounding ``size`` pixels at the origin, turned by up to :data:`MAX_ROTATION`
    degrees (not a circle), a star with a random inner radius."""
    angle = 0.0 if shape == "circle" else round(float(rng.uniform(-MAX_ROTATION, MAX_ROTATION)), 3)
    ratio = round(float(rng.uniform(*STAR_RATIO)), 3) if shape == "star" else 0.45
    return Placement(shape, 0.0, 0.0, round(size, 3), angle, ratio)


def paint(
    picture: np.ndarray, placement: Placement, fill: Sequence[float], outline: Outline | None = None
) -> np.ndarray:
    """``picture`` (float ``[H, W, 3]``) with the shape painted over it in ``fill``, antialiased,
    and an optional outline on top. Returns a new array."""
    height, width = picture.shape[:2]
    alpha = coverage(placement, width, height)[:, :, None]
    result = picture * (1.0 - alpha) + np.asarray(fill, dtype=np.float32) * alpha
    if outline is not None:
        line = coverage(placement, width, height, outline=outline.width)[:, :, None]
        result = result * (1.0 - line) + np.float32(outline.grey) * line
    return result.astype(np.float32)


def vertices(placement: Placement) -> list[tuple[float, float]]:
    """The polygon's corners in canvas pixels (a circle is approximated by 64 of them)."""
    size = placement.size
    if placement.shape == "circle":
        corners = _regular(64, size / 2, 0.0)
    elif placement.shape == "square":
        half = size / 2
        corners = [(-half, -half), (half, -half), (half, half), (-half, half)]
    elif placement.shape == "triangle":
        corners = _regular(3, size / math.sqrt(3), 0.0)
    else:
        outer, inner = size / 2, placement.ratio * size / 2
        corners = [
            (radius * math.sin(math.pi * k / 5), -radius * math.cos(math.pi * k / 5))
            for k, radius in enumerate([outer, inner] * 5)
        ]
    # y grows downwards on a canvas, so a counter-clockwise turn as seen is clockwise in (x, y).
    theta = math.radians(placement.angle)
    cos, sin = math.cos(theta), math.sin(theta)
    return [(placement.cx + x * cos + y * sin, placement.cy - x * sin + y * cos) for x, y in corners]


def extent(placement: Placement) -> tuple[float, float, float, float]:
    """The shape's bounding box ``(left, top, right, bottom)`` in canvas pixels."""
    xs, ys = zip(*vertices(placement), strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def place_in(placement: Placement, box: Sequence[float]) -> Placement:
    """``placement`` moved the least so that the shape lies inside ``box`` = (left, top, right, bottom).

    A shape larger than the box is centred in it.
    """
    left, top, right, bottom = extent(placement)
    dx = _shift(left, right, box[0], box[2])
    dy = _shift(top, bottom, box[1], box[3])
    return placement.moved(placement.cx + dx, placement.cy + dy)


def coverage(placement: Placement, width: int, height: int, outline: float = 0.0) -> np.ndarray:
    """float32 ``[height, width]`` in [0, 1]: how much of each pixel the shape covers.

    outline: with a positive width (pixels), the coverage of an outline that wide just inside the
    shape's edge instead of the filled shape.
    """
    result = np.zeros((height, width), dtype=np.float32)
    x0, y0, x1, y1 = extent(placement)
    left, top = max(0, math.floor(x0) - _PAD), max(0, math.floor(y0) - _PAD)
    right, bottom = min(width, math.ceil(x1) + _PAD), min(height, math.ceil(y1) + _PAD)
    if right <= left or bottom <= top:
        return result
    scale = SUPERSAMPLE
    big = Image.new("L", ((right - left) * scale, (bottom - top) * scale), 0)
    draw = ImageDraw.Draw(big)
    # A pixel k spans [k, k + 1) on the canvas; Pillow puts pixel k of the big image at k.
    points = [((x - left) * scale - 0.5, (y - top) * scale - 0.5) for x, y in vertices(placement)]
    line = max(1, round(outline * scale))
    if placement.shape == "circle":
        radius = placement.size / 2 * scale
        cx, cy = (placement.cx - left) * scale - 0.5, (placement.cy - top) * scale - 0.5
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if outline > 0:
            draw.ellipse(box, outline=255, width=line)
        else:
            draw.ellipse(box, fill=255)
    elif outline > 0:
        draw.polygon(points, outline=255, width=line)
    else:
        draw.polygon(points, fill=255)
    small = big.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
    result[top:bottom, left:right] = np.asarray(small, dtype=np.float32) / 255.0
    return result


def _regular(count: int, radius: float, start: float) -> list[tuple[float, float]]:
    """``count`` corners on a circle of ``radius`` about the origin, the first straight up."""
    return [
        (
            radius * math.sin(start + 2 * math.pi * k / count),
            -radius * math.cos(start + 2 * math.pi * k / count),
        )
        for k in range(count)
    ]


def _shift(low: float, high: float, lowest: float, highest: float) -> float:
    """How far to move [low, high] to lie within [lowest, highest] (centred when it cannot)."""
    if high - low > highest - lowest:
        return (lowest + highest) / 2 - (low + high) / 2
    if low < lowest:
        return lowest - low
    if high > highest:
        return highest - high
    return 0.0
