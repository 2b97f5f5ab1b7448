"""Synthetic media whose class is plain to see or hear: coloured shapes (png) and pure tones (wav).

Every file varies in more than its class (shape, size, position, background, noise; duration,
amplitude, phase, a little detuning), so a model that answers right on new files has learned the
class, not the file. The same ``seed`` always writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw

#: Class name -> base RGB colour of the shape.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 175, 55),
    "blue": (40, 70, 220),
    "yellow": (235, 210, 40),
}
#: Class name -> base frequency of the tone in Hz.
PITCHES: dict[str, float] = {"low": 220.0, "high": 1760.0}

SAMPLE_RATE = 16000


def write_image(path: Path, colour: str, rng: np.random.Generator, size: int = 32) -> Path:
    """A ``size``-pixel square png: a filled square or circle of ``colour`` on a light background.

    The shape covers 35-75 % of the side at a random position; background, colour and pixels get
    random jitter and noise.
    """
    background = tuple(int(v) for v in rng.integers(200, 256) - rng.integers(0, 20, size=3))
    image = Image.new("RGB", (size, size), background)
    side = int(rng.integers(int(0.35 * size), int(0.75 * size) + 1))
    left, top = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    fill = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in COLOURS[colour])
    box = (left, top, left + side - 1, top + side - 1)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.5:
        draw.rectangle(box, fill=fill)
    else:
        draw.ellipse(box, fill=fill)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, size=(size, size, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def write_tone(path: Path, pitch: str, rng: np.random.Generator) -> Path:
    """A 16 kHz mono wav: a sine of ``pitch`` (detuned up to ±3 %), 0.8-1.4 s, random amplitude and
    phase, short fades, and a little white noise."""
    duration = rng.uniform(0.8, 1.4)
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    frequency = PITCHES[pitch] * rng.uniform(0.97, 1.03)
    tone = rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    signal = tone * fade + rng.normal(0.0, 0.01, t.shape)
    soundfile.write(path, signal.astype(np.float32), SAMPLE_RATE)
    return path
