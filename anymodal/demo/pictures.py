"""Still pictures of the demo world: colour images, depth maps and thermal images of one shape.

Each ``render_*`` takes the file's attributes, a numpy Generator and the path to write, draws
every nuisance parameter from the generator (keyword arguments pin some, for the shipped
examples), writes the file and returns the parameters as a JSON-able dict (``meta.render``). The
returned ``placement`` is exact: :func:`anymodal.demo.shapes.coverage` redraws the shape from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from anymodal.demo.backgrounds import paint_background, pick_background, smooth_noise
from anymodal.demo.palette import pick_colour
from anymodal.demo.shapes import Outline, Placement, coverage, paint, place_in, random_pose
from anymodal.demo.vocabulary import SHAPES

__all__ = ["render_depth", "render_image", "render_thermal"]

# --- image ---------------------------------------------------------------------------------------

#: Side range of a canvas in pixels, and the share of canvases that are not square (up to 4:3).
IMAGE_SIDE = (64, 320)
NON_SQUARE_SHARE = 0.25
MAX_ASPECT = 4 / 3
#: position -> (cx range, cy range) of the shape's centre, as fractions of the central square.
POSITIONS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "left": ((0.12, 0.3), (0.38, 0.62)),
    "right": ((0.7, 0.88), (0.38, 0.62)),
    "top": ((0.38, 0.62), (0.12, 0.3)),
    "bottom": ((0.38, 0.62), (0.7, 0.88)),
    "centre": ((0.42, 0.58), (0.42, 0.58)),
}
#: size -> bounding size range, as a fraction of the central square's side.
SIZES: dict[str, tuple[float, float]] = {"small": (0.16, 0.26), "large": (0.38, 0.52)}
#: Space kept between a shape and the edge of the central square, as a fraction of its side.
MARGIN = 0.02
#: Shares of images with a dark outline around the shape, and blurred as a whole.
OUTLINE_SHARE = 0.2
BLUR_SHARE = 0.2
MAX_BLUR = 0.8


def render_image(
    attributes: Mapping[str, str],
    rng: np.random.Generator,
    path: Path,
    *,
    canvas: tuple[int, int] | None = None,
    background: str | None = None,
    named_colour: bool | None = None,
    outline: bool | None = None,
    blur: bool | None = None,
) -> dict[str, Any]:
    """Write an RGB png of one shape with ``attributes`` (shape, colour, position, size).

    The shape sits in the canvas' central square (the image plugin centre-crops to it).
    canvas: (width, height); background: a kind of :data:`anymodal.demo.backgrounds.BACKGROUND_KINDS`;
    named_colour, outline, blur: force (True) or forbid (False) an exact named colour, an outline,
    a blur. Unpinned, each is random.
    """
    width, height = canvas or _image_canvas(rng)
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    (x_low, x_high), (y_low, y_high) = POSITIONS[attributes["position"]]
    pose = random_pose(attributes["shape"], rng.uniform(*SIZES[attributes["size"]]) * side, rng)
    wanted = pose.moved(left + rng.uniform(x_low, x_high) * side, top + rng.uniform(y_low, y_high) * side)
    margin = MARGIN * side
    placement = _rounded(
        place_in(wanted, (left + margin, top + margin, left + side - margin, top + side - margin))
    )
    fill, named = pick_colour(attributes["colour"], rng, named_colour)
    edge = _pick_outline(rng, side, outline)
    radius = float(rng.uniform(0, MAX_BLUR)) if _decide(rng, BLUR_SHARE, blur) else 0.0
    scene = pick_background(rng, background)
    picture = paint(paint_background(scene, width, height, rng), placement, fill, edge)
    image = Image.fromarray(np.clip(np.rint(picture), 0, 255).astype(np.uint8))
    if radius > 0:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    image.save(path, format="PNG")
    return {
        "canvas": [width, height],
        "region": [left, top, side],
        "placement": asdict(placement),
        "fill": list(fill),
        "named_colour": named,
        "outline": None if edge is None else asdict(edge),
        "blur": round(radius, 3),
        "background": scene["kind"],
        "background_params": scene,
    }


def _image_canvas(rng: np.random.Generator) -> tuple[int, int]:
    short = int(rng.integers(IMAGE_SIDE[0], IMAGE_SIDE[1] + 1))
    if rng.random() >= NON_SQUARE_SHARE:
        return short, short
    long = round(short * rng.uniform(1.05, MAX_ASPECT))
    return (long, short) if rng.random() < 0.5 else (short, long)


def _pick_outline(rng: np.random.Generator, side: int, forced: bool | None) -> Outline | None:
    """A thin dark outline (about 1 pixel at 64 px, 2-4 at 320 px), or None."""
    if not _decide(rng, OUTLINE_SHARE, forced):
        return None
    width = max(1.0, side * float(rng.uniform(0.006, 0.012)))
    return Outline(width=round(width, 3), grey=int(rng.integers(0, 61)))


# --- depth ---------------------------------------------------------------------------------------

#: Side range of depth and thermal canvases (square), and of their shape, as a fraction of it.
SCENE_SIDE = (96, 160)
OBJECT_SIZE = (0.25, 0.45)
#: distance -> the object's depth range in millimetres.
DISTANCES_MM: dict[str, tuple[float, float]] = {"near": (500.0, 1500.0), "far": (3000.0, 4500.0)}
#: The wall behind: depth range, largest change across the image (a tilted wall), in millimetres.
WALL_MM = (6000.0, 9000.0)
WALL_TILT_MM = 800.0
#: Depth noise, relative to depth; largest share of pixels without a measurement (0).
DEPTH_NOISE = 0.005
MAX_DROPOUT = 0.03


def render_depth(
    attributes: Mapping[str, str], rng: np.random.Generator, path: Path, *, shape: str | None = None
) -> dict[str, Any]:
    """Write a 16-bit png in millimetres: one object ``near`` or ``far`` in front of a far wall."""
    side = int(rng.integers(SCENE_SIDE[0], SCENE_SIDE[1] + 1))
    placement = _random_object(side, rng, shape)
    wall = float(rng.uniform(*WALL_MM))
    tilt, direction = float(rng.uniform(-WALL_TILT_MM, WALL_TILT_MM)), float(rng.uniform(0, 2 * math.pi))
    depth = wall + tilt * _ramp(side, direction)
    object_mm = float(rng.uniform(*DISTANCES_MM[attributes["distance"]]))
    inside = coverage(placement, side, side) >= 0.5  # a depth camera sees an edge, not a blend
    depth = np.where(inside, object_mm, depth)
    depth *= 1.0 + rng.normal(0.0, DEPTH_NOISE, size=depth.shape)
    dropout = float(rng.uniform(0, MAX_DROPOUT))
    depth[rng.random(size=depth.shape) < dropout] = 0.0
    millimetres = np.clip(np.rint(depth), 0, 65535).astype(np.uint16)
    Image.fromarray(millimetres).save(path, format="PNG")
    return {
        "canvas": [side, side],
        "placement": asdict(placement),
        "object_mm": round(object_mm, 1),
        "wall_mm": round(wall, 1),
        "wall_tilt_mm": round(tilt, 1),
        "dropout": round(dropout, 4),
    }


# --- thermal -------------------------------------------------------------------------------------

#: temperature -> the object's grey level range (0-255).
TEMPERATURES: dict[str, tuple[int, int]] = {"hot": (200, 255), "cold": (0, 45)}
#: Background grey level range, largest change across the image, noise sigma range.
THERMAL_BACKGROUND = (70.0, 160.0)
THERMAL_GRADIENT = 30.0
THERMAL_NOISE = (3.0, 8.0)
#: Blur radius range: thermal cameras are soft.
THERMAL_BLUR = (0.5, 1.5)


def render_thermal(
    attributes: Mapping[str, str], rng: np.random.Generator, path: Path, *, shape: str | None = None
) -> dict[str, Any]:
    """Write an 8-bit greyscale png: one ``hot`` (bright) or ``cold`` (dark) object on a mild background."""
    side = int(rng.integers(SCENE_SIDE[0], SCENE_SIDE[1] + 1))
    placement = _random_object(side, rng, shape)
    level = float(rng.uniform(*THERMAL_BACKGROUND))
    gradient, direction = float(rng.uniform(0, THERMAL_GRADIENT)), float(rng.uniform(0, 2 * math.pi))
    warmth = level + gradient * _ramp(side, direction) + 4.0 * smooth_noise(side, side, 3, rng)
    low, high = TEMPERATURES[attributes["temperature"]]
    object_level = float(rng.uniform(low, high))
    alpha = coverage(placement, side, side)
    noise = float(rng.uniform(*THERMAL_NOISE))
    grey = warmth * (1.0 - alpha) + object_level * alpha + rng.normal(0.0, noise, size=alpha.shape)
    radius = float(rng.uniform(*THERMAL_BLUR))
    image = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    image.filter(ImageFilter.GaussianBlur(radius)).save(path, format="PNG")
    return {
        "canvas": [side, side],
        "placement": asdict(placement),
        "object_level": round(object_level, 1),
        "background_level": round(level, 1),
        "gradient": round(gradient, 1),
        "noise": round(noise, 2),
        "blur": round(radius, 3),
    }


# --- shared --------------------------------------------------------------------------------------


def _random_object(side: int, rng: np.random.Generator, shape: str | None) -> Placement:
    """Any shape (or ``shape``) of 25-45 % of ``side``, anywhere fully inside the canvas."""
    chosen = shape or SHAPES[int(rng.integers(len(SHAPES)))]
    pose = random_pose(chosen, rng.uniform(*OBJECT_SIZE) * side, rng)
    margin = MARGIN * side
    wanted = pose.moved(rng.uniform(0, side), rng.uniform(0, side))
    return _rounded(place_in(wanted, (margin, margin, side - margin, side - margin)))


def _ramp(side: int, direction: float) -> np.ndarray:
    """float ``[side, side]`` from -0.5 to 0.5 across the canvas along ``direction`` (radians)."""
    axis = (np.arange(side, dtype=np.float64) + 0.5) / side - 0.5
    x, y = np.meshgrid(axis, axis)
    return x * math.cos(direction) + y * math.sin(direction)


def _rounded(placement: Placement) -> Placement:
    """Centre rounded to 1/1000 pixel, so the meta written to JSON redraws the very same shape."""
    return placement.moved(round(placement.cx, 3), round(placement.cy, 3))


def _decide(rng: np.random.Generator, share: float, forced: bool | None) -> bool:
    """``forced`` when given, else True with probability ``share``. Draws either way, so pinning one
    choice does not shift every later random draw."""
    drawn = bool(rng.random() < share)
    return drawn if forced is None else forced
