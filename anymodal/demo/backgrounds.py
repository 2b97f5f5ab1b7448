"""Backgrounds behind the shapes: plain or noisy, always grey or nearly so.

Half are plain: pure white (15 % of all backgrounds), pure black (5 %), or any grey level with at
most a faint tint (channels at most 25 apart). Half are noisy: a grey level of 30-230 with
per-pixel grey noise, smooth blotches (coarse noise, upsampled), or both. Backgrounds never carry
a colour of their own, so the shape's colour is the only colour in the picture.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

__all__ = ["BACKGROUND_KINDS", "paint_background", "pick_background"]

#: Background kind -> its share of all backgrounds.
BACKGROUND_KINDS: dict[str, float] = {"white": 0.15, "black": 0.05, "plain": 0.30, "noisy": 0.50}
#: Widest channel spread of a tinted plain background.
MAX_TINT = 25
#: Noisy backgrounds: what varies over the pixels, and each variant's share.
NOISE_KINDS: dict[str, float] = {"grain": 0.4, "blotches": 0.4, "both": 0.2}


def pick_background(rng: np.random.Generator, kind: str | None = None) -> dict[str, Any]:
    """Parameters of a random background (JSON-able); ``kind`` pins one of :data:`BACKGROUND_KINDS`."""
    if kind is None:
        kind = _choose(BACKGROUND_KINDS, rng)
    if kind not in BACKGROUND_KINDS:
        raise ValueError(f"unknown background {kind!r}; known: {', '.join(BACKGROUND_KINDS)}")
    if kind == "white":
        return {"kind": kind, "rgb": [255, 255, 255]}
    if kind == "black":
        return {"kind": kind, "rgb": [0, 0, 0]}
    if kind == "plain":
        level = rng.uniform(0, 255)
        spread = rng.uniform(0, MAX_TINT) if rng.random() < 0.5 else 0.0
        offsets = rng.uniform(0, spread, size=3)
        rgb = np.clip(np.round(level + offsets - offsets.mean()), 0, 255)
        return {"kind": kind, "rgb": [int(v) for v in rgb]}
    noise = _choose(NOISE_KINDS, rng)
    return {
        "kind": kind,
        "level": round(float(rng.uniform(30, 230)), 2),
        "grain": round(float(rng.uniform(8, 35)), 2) if noise in ("grain", "both") else 0.0,
        "blotches": round(float(rng.uniform(10, 45)), 2) if noise in ("blotches", "both") else 0.0,
        "cells": int(rng.integers(2, 9)),
    }


def paint_background(params: dict[str, Any], width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """float32 ``[height, width, 3]`` in [0, 255]: the background ``params`` describe.

    The noise itself is drawn from ``rng``, so the same parameters paint different pixels.
    """
    if params["kind"] != "noisy":
        return np.broadcast_to(np.asarray(params["rgb"], dtype=np.float32), (height, width, 3)).copy()
    grey = np.full((height, width), params["level"], dtype=np.float32)
    if params["blotches"]:
        grey += params["blotches"] * smooth_noise(width, height, params["cells"], rng)
    if params["grain"]:
        grey += rng.normal(0.0, params["grain"], size=(height, width)).astype(np.float32)
    return np.repeat(np.clip(grey, 0, 255)[:, :, None], 3, axis=2)


def smooth_noise(width: int, height: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """float32 ``[height, width]``: unit normal noise on a ``cells`` x ``cells`` grid, smoothly upsampled."""
    coarse = rng.normal(0.0, 1.0, size=(cells, cells)).astype(np.float32)
    smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(smooth, dtype=np.float32)


def _choose(shares: dict[str, float], rng: np.random.Generator) -> str:
    names = list(shares)
    return names[int(rng.choice(len(names), p=np.asarray(list(shares.values())) / sum(shares.values())))]
