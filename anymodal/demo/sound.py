"""Sounds of the demo world: a tone that is low or high, and steady, beeping, rising or falling.

16 kHz mono 16-bit wav, 2-3 s. A low tone is centred at 180-350 Hz, a high one at 1100-2200 Hz.
A rising or falling tone sweeps exponentially from ``c / r`` to ``c * r`` (or back), ``r`` being
1.4-1.6, so even a sweep stays within its pitch class (low: up to 560 Hz; high: from 687 Hz).
A beeping tone is switched on and off 2-5 times a second. Amplitude, phase, a second harmonic
(40 % of tones), fades and a little white noise vary.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SAMPLE_RATE", "render_audio", "synthesize", "write_wav"]

SAMPLE_RATE = 16000
DURATION_S = (2.0, 3.0)
#: pitch -> range of the centre frequency in Hz (drawn log-uniformly).
PITCH_HZ: dict[str, tuple[float, float]] = {"low": (180.0, 350.0), "high": (1100.0, 2200.0)}
#: A sweep goes from centre / ratio to centre * ratio.
SWEEP_RATIO = (1.4, 1.6)
#: Beeping: on/off rate in Hz, share of each period that is on, ramp at each switch in seconds.
BEEP_RATE_HZ = (2.0, 5.0)
BEEP_DUTY = (0.4, 0.6)
BEEP_RAMP_S = 0.005
AMPLITUDE = (0.2, 0.8)
FADE_S = 0.01
NOISE = (0.0, 0.02)
#: Share of tones with a second harmonic, and its amplitude relative to the fundamental.
HARMONIC_SHARE = 0.4
HARMONIC = (0.1, 0.3)


def synthesize(attributes: Mapping[str, str], rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """float32 samples in [-1, 1] of a tone with ``attributes`` (pitch, pattern), and its parameters."""
    duration = float(rng.uniform(*DURATION_S))
    count = round(duration * SAMPLE_RATE)
    t = np.arange(count, dtype=np.float64) / SAMPLE_RATE
    low, high = PITCH_HZ[attributes["pitch"]]
    centre = float(math.exp(rng.uniform(math.log(low), math.log(high))))
    pattern = attributes["pattern"]
    ratio = float(rng.uniform(*SWEEP_RATIO)) if pattern in ("rising", "falling") else 1.0
    exponent = {"rising": 1.0, "falling": -1.0}.get(pattern, 0.0) * (2 * t / duration - 1)
    frequency = centre * ratio**exponent
    phase = 2 * math.pi * np.cumsum(frequency) / SAMPLE_RATE + rng.uniform(0, 2 * math.pi)
    harmonic = float(rng.uniform(*HARMONIC)) if rng.random() < HARMONIC_SHARE else 0.0
    tone = (np.sin(phase) + harmonic * np.sin(2 * phase + rng.uniform(0, 2 * math.pi))) / (1 + harmonic)
    params: dict[str, Any] = {"duration_s": round(duration, 4), "centre_hz": round(centre, 2)}
    if pattern == "beeping":
        rate, duty = float(rng.uniform(*BEEP_RATE_HZ)), float(rng.uniform(*BEEP_DUTY))
        tone *= _gate(t, rate, duty, float(rng.uniform(0, 1)))
        params.update(beep_rate_hz=round(rate, 3), duty=round(duty, 3))
    if ratio != 1.0:
        params["sweep_ratio"] = round(ratio, 4)
    amplitude = float(rng.uniform(*AMPLITUDE))
    fade = np.clip(np.minimum(t, t[-1] - t) / FADE_S, 0.0, 1.0)
    noise = float(rng.uniform(*NOISE))
    samples = amplitude * tone * fade + rng.normal(0.0, noise, size=count)
    params.update(amplitude=round(amplitude, 4), harmonic=round(harmonic, 4), noise=round(noise, 5))
    return np.clip(samples, -1.0, 1.0).astype(np.float32), params


def render_audio(attributes: Mapping[str, str], rng: np.random.Generator, path: Path) -> dict[str, Any]:
    """Write a 16 kHz mono 16-bit wav of a tone with ``attributes``; return its parameters."""
    samples, params = synthesize(attributes, rng)
    write_wav(path, samples)
    return {"sample_rate": SAMPLE_RATE, **params}


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write float ``samples`` in [-1, 1] as a mono 16-bit PCM wav."""
    pcm = np.clip(np.rint(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(sample_rate)
        file.writeframes(pcm.tobytes())


def _gate(t: np.ndarray, rate: float, duty: float, offset: float) -> np.ndarray:
    """On/off envelope: on for ``duty`` of each 1/``rate`` s period, with linear ramps at each switch."""
    period = 1.0 / rate
    within = ((t * rate + offset) % 1.0) * period  # seconds into the current period
    on = duty * period
    ramp = np.minimum(within, on - within) / BEEP_RAMP_S
    return np.where(within < on, np.clip(ramp, 0.0, 1.0), 0.0)
