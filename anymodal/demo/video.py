"""Videos of the demo world: one shape moving left, right, up or down at a constant speed, or still.

96 x 96 pixels, 8 frames per second, 24 frames (3 s), H.264 in mp4. The background is an image
background (see :mod:`anymodal.demo.backgrounds`), fixed over time, plus fresh faint noise in
every frame, as a camera would add. A moving shape travels 0.15-0.2 frame widths per second and
stays wholly in the frame all the time; a still one only jitters, by at most a pixel.

Encoding is single-threaded, without B-frames and without x264's macroblock-tree rate control, so
the same frames always give the same bytes. With either, x264 (as PyAV ships it) encoded about a
third of these small clips differently from run to run, depending on what the process had done
before (an uninitialised read, by the look of it), threads or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from anymodal.contract.errors import UsageError
from anymodal.demo.backgrounds import paint_background, pick_background
from anymodal.demo.palette import pick_colour
from anymodal.demo.pictures import MARGIN, OUTLINE_SHARE
from anymodal.demo.shapes import Outline, Placement, extent, paint, random_pose

__all__ = ["FPS", "FRAMES", "FRAME_SIZE", "render_video", "require_av", "write_mp4"]

FRAME_SIZE = 96
FPS = 8
FRAMES = 24
#: Bounding size of the shape, as a fraction of the frame.
SHAPE_SIZE = (0.22, 0.34)
#: Speed range of a moving shape, in frame widths per second.
SPEED = (0.15, 0.2)
#: Per-frame noise sigma range (grey levels).
FRAME_NOISE = (2.0, 4.0)
#: motion -> direction of travel in (x, y), y downwards.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "still": (0, 0),
}
#: Largest jitter of a still shape either way, in pixels (so at most 1 pixel in all).
STILL_JITTER = 0.5
#: x264 quality: constant rate factor (lower is better; 23 is x264's default).
CRF = 20
#: Off for reproducible bytes: with macroblock-tree rate control (and B-frames, which lean on it)
#: x264 encoded a third of these clips differently depending on what the process did before.
X264_PARAMS = "bframes=0:mbtree=0"


def render_video(
    attributes: Mapping[str, str],
    rng: np.random.Generator,
    path: Path,
    *,
    background: str | None = None,
    named_colour: bool | None = None,
    outline: bool | None = None,
) -> dict[str, Any]:
    """Write an mp4 of a shape with ``attributes`` (shape, colour, motion); return its parameters."""
    size = FRAME_SIZE
    pose = random_pose(attributes["shape"], rng.uniform(*SHAPE_SIZE) * size, rng)
    dx, dy = DIRECTIONS[attributes["motion"]]
    speed = float(rng.uniform(*SPEED)) if (dx, dy) != (0, 0) else 0.0
    travel = speed * size * (FRAMES - 1) / FPS
    pose = _fitting(pose, travel + 2 * STILL_JITTER)
    start_x, start_y = _start(pose, dx * travel, dy * travel, rng)
    fill, named = pick_colour(attributes["colour"], rng, named_colour)
    edge = None
    if (rng.random() < OUTLINE_SHARE) if outline is None else outline:
        edge = Outline(width=round(float(rng.uniform(1.0, 1.5)), 3), grey=int(rng.integers(0, 61)))
    scene = pick_background(rng, background)
    backdrop = paint_background(scene, size, size, rng)
    noise = float(rng.uniform(*FRAME_NOISE))
    frames = np.empty((FRAMES, size, size, 3), dtype=np.uint8)
    for index in range(FRAMES):
        progress = index / (FRAMES - 1)
        jitter = rng.uniform(-STILL_JITTER, STILL_JITTER, size=2) if speed == 0 else np.zeros(2)
        placement = pose.moved(
            start_x + dx * travel * progress + jitter[0], start_y + dy * travel * progress + jitter[1]
        )
        frame = paint(backdrop, placement, fill, edge) + rng.normal(0.0, noise, size=backdrop.shape)
        frames[index] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    write_mp4(path, frames, FPS)
    return {
        "frames": FRAMES,
        "fps": FPS,
        "canvas": [size, size],
        "placement": asdict(pose.moved(round(start_x, 3), round(start_y, 3))),
        "speed": round(speed, 4),
        "travel_px": round(travel, 3),
        "fill": list(fill),
        "named_colour": named,
        "outline": None if edge is None else asdict(edge),
        "frame_noise": round(noise, 3),
        "background": scene["kind"],
        "background_params": scene,
    }


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """Encode uint8 RGB ``frames`` ``[T, H, W, 3]`` as H.264 (yuv420p) in an mp4, single-threaded."""
    av = require_av()
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(CRF), "preset": "fast", "threads": "1", "x264-params": X264_PARAMS}
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def require_av() -> Any:
    """The ``av`` module (PyAV), or a UsageError saying how to install it."""
    try:
        import av
    except ImportError as error:
        raise UsageError(
            f"writing the demo videos needs PyAV, which failed to import: {error}",
            hint="pip install av, or leave video out with --modality",
        ) from error
    return av


def _fitting(pose: Placement, travel: float) -> Placement:
    """``pose``, shrunk if need be so that it can travel ``travel`` pixels within the frame's margins.

    Only the largest, most turned shapes on the fastest paths need it, and lose a few per cent.
    """
    room = FRAME_SIZE * (1 - 2 * MARGIN)
    left, top, right, bottom = extent(pose)
    reach = max(right - left, bottom - top)
    if reach + travel <= room:
        return pose
    scale = (room - travel) / reach
    return Placement(
        pose.shape, pose.cx, pose.cy, round(pose.size * scale * 0.999, 3), pose.angle, pose.ratio
    )


def _start(pose: Placement, shift_x: float, shift_y: float, rng: np.random.Generator) -> tuple[float, float]:
    """A random first centre from which moving by (shift_x, shift_y) keeps the shape in the frame.

    A still shape keeps :data:`STILL_JITTER` pixels of room for its jitter.
    """
    left, top, right, bottom = extent(pose)  # pose is at the origin: these are offsets
    margin = FRAME_SIZE * MARGIN + (STILL_JITTER if (shift_x, shift_y) == (0, 0) else 0.0)
    low_x, high_x = margin - left - min(shift_x, 0), FRAME_SIZE - margin - right - max(shift_x, 0)
    low_y, high_y = margin - top - min(shift_y, 0), FRAME_SIZE - margin - bottom - max(shift_y, 0)
    return float(rng.uniform(low_x, max(low_x, high_x))), float(rng.uniform(low_y, max(low_y, high_y)))
