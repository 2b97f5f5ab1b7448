"""Captions of the demo pictures' layout, for the contrastive part of the image trunk's pre-training.

ImageBind's image space is CLIP's: pre-trained contrastively against captions, so that a picture
lands near what is said about it and, since captions say what is where, pictures of different
scenes land apart. The demo's stand-in for those captions is what a caption of one of its scenes
would say of its layout, as numbers: which shape, where its centre is, how big it is, how far it
is turned, and a star's depth. :func:`layout_caption` reads them off a picture's render
parameters (``meta.render``) and :class:`CaptionEncoder` is the small text tower they go through;
the image trunk learns, by a symmetric InfoNCE against it (:class:`anymodal.bind.objective.InfoNCE`),
to put the same scene's pictures together and other scenes' apart. Colour and background are left
out of the caption on purpose: the attribute heads already teach colour, and a space organised by
layout is one a sensor that sees no colour (a lidar, a depth camera) can be bound to and retrieve in.
Like the attribute heads, the caption tower is thrown away after pre-training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from anymodal.demo.shapes import MAX_ROTATION, STAR_RATIO
from anymodal.demo.vocabulary import SHAPES

__all__ = ["CAPTION_WIDTH", "CaptionEncoder", "layout_caption"]

#: One-hot shape, then centre x and y and size (fractions of the central square the image plugin
#: keeps), the turn (-1..1 of the largest), a star's inner radius (-1..1 of its range; 0 otherwise).
CAPTION_WIDTH = len(SHAPES) + 5


def layout_caption(render: Mapping[str, Any], shape: str) -> list[float]:
    """The layout caption of one picture, from its render parameters (``meta.render``) and shape."""
    left, top, side = render["region"]
    placement = render["placement"]
    low, high = STAR_RATIO
    depth = (2 * placement["ratio"] - low - high) / (high - low) if shape == "star" else 0.0
    return [
        *(float(shape == name) for name in SHAPES),
        (placement["cx"] - left) / side,
        (placement["cy"] - top) / side,
        placement["size"] / side,
        placement["angle"] / MAX_ROTATION,
        depth,
    ]


class CaptionEncoder(nn.Module):
    """``[B, CAPTION_WIDTH]`` layout captions -> ``[B, width]`` embeddings (a two-layer MLP)."""

    def __init__(self, width: int, hidden: int = 256) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(CAPTION_WIDTH, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, width),
        )

    def forward(self, captions: torch.Tensor) -> torch.Tensor:
        return self.layers(captions)
