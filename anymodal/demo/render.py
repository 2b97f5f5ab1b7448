"""One entry point for writing any demo file: :func:`render` picks the modality's renderer.

Every renderer has the signature ``(attributes, rng, path, **overrides) -> parameters``: it draws
all nuisance parameters from ``rng`` (keyword overrides pin some), writes ``path`` and returns what
it drew, JSON-able, for ``meta.render``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from anymodal.demo.motion import render_imu
from anymodal.demo.pictures import render_depth, render_image, render_thermal
from anymodal.demo.sound import render_audio
from anymodal.demo.video import render_video

__all__ = ["RENDERERS", "render"]

Renderer = Callable[..., dict[str, Any]]

#: modality -> its renderer.
RENDERERS: dict[str, Renderer] = {
    "image": render_image,
    "video": render_video,
    "audio": render_audio,
    "depth": render_depth,
    "thermal": render_thermal,
    "imu": render_imu,
}


def render(
    modality: str, attributes: Mapping[str, str], rng: np.random.Generator, path: Path, **overrides: Any
) -> dict[str, Any]:
    """Write a ``modality`` file showing ``attributes`` to ``path``; return its nuisance parameters."""
    return RENDERERS[modality](attributes, rng, path, **overrides)
