"""What the demo world is about: its modalities, their named attributes and the classes of each.

Plain data and no imports beyond the standard library, so the CLI can offer ``--modality`` choices
without loading numpy.
"""

from __future__ import annotations

#: The modalities of the world, in the order they are generated (and indexed for seeding).
MODALITIES: tuple[str, ...] = ("image", "video", "audio", "depth", "thermal", "imu")

SHAPES = ("circle", "square", "triangle", "star")
COLOURS = ("red", "green", "blue", "yellow")

#: modality -> attribute -> its classes. Every file has exactly one class of each attribute.
ATTRIBUTES: dict[str, dict[str, tuple[str, ...]]] = {
    "image": {
        "shape": SHAPES,
        "colour": COLOURS,
        "position": ("left", "right", "top", "bottom", "centre"),
        "size": ("small", "large"),
    },
    "video": {"shape": SHAPES, "colour": COLOURS, "motion": ("left", "right", "up", "down", "still")},
    "audio": {"pitch": ("low", "high"), "pattern": ("steady", "beeping", "rising", "falling")},
    "depth": {"distance": ("near", "far")},
    "thermal": {"temperature": ("hot", "cold")},
    "imu": {"activity": ("still", "walking", "running", "spinning")},
}

#: modality -> the suffix (without dot) of its media files.
EXTENSIONS: dict[str, str] = {
    "image": "png",
    "video": "mp4",
    "audio": "wav",
    "depth": "png",
    "thermal": "png",
    "imu": "npy",
}


def placeholder(modality: str) -> str:
    """The text that stands for a file of ``modality`` in a user message, e.g. ``<image>``."""
    return f"<{modality}>"
