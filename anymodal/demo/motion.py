"""IMU recordings of the demo world: a person standing still, walking, running or spinning around.

float32 ``[6, 2000]``: accelerometer x, y, z in m/s^2, then gyroscope x, y, z in rad/s, 400 Hz for
5 s, ImageBind's IMU input. Signals are made in a body frame (z up, x forward, y left) and turned
into the device's frame, a random orientation tilted at most 25 degrees from upright, so gravity
reads 9.81 m/s^2 along a direction near +z. Walking and running bounce at the step frequency with
harmonics and sway at the stride frequency; spinning turns about the vertical at 3-8 rad/s. Every
oscillation has a random phase; frequencies drift slowly, as a person's do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RATE_HZ", "SAMPLES", "render_imu", "synthesize_imu"]

RATE_HZ = 400
SAMPLES = 2000
GRAVITY = 9.81
MAX_TILT_DEG = 25.0

#: activity -> (step frequency Hz, vertical amplitude m/s^2, sway m/s^2, gyro rad/s) ranges.
GAITS: dict[str, dict[str, tuple[float, float]]] = {
    "walking": {"step_hz": (1.6, 2.2), "bounce": (1.5, 3.0), "sway": (0.5, 1.0), "gyro": (0.2, 0.5)},
    "running": {"step_hz": (2.6, 3.4), "bounce": (6.0, 12.0), "sway": (2.0, 4.0), "gyro": (0.8, 1.5)},
}
#: Spinning: turn rate about the vertical (rad/s), centripetal acceleration (m/s^2).
SPIN_RATE = (3.0, 8.0)
SPIN_CENTRIPETAL = (1.0, 3.0)
#: Sensor noise sigma ranges while still: accelerometer (m/s^2), gyroscope (rad/s).
STILL_NOISE = {"acc": (0.02, 0.05), "gyro": (0.005, 0.02)}
#: Sensor noise sigma ranges while moving.
MOVING_NOISE = {"acc": (0.05, 0.15), "gyro": (0.01, 0.03)}


def synthesize_imu(activity: str, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """float32 ``[6, SAMPLES]`` of ``activity`` in the device frame, and its parameters."""
    t = np.arange(SAMPLES, dtype=np.float64) / RATE_HZ
    if activity == "still":
        acc, gyro, params = _standing(t, rng)
    elif activity == "spinning":
        acc, gyro, params = _spinning(t, rng)
    elif activity in GAITS:
        acc, gyro, params = _gait(t, GAITS[activity], rng)
    else:
        raise ValueError(f"unknown activity {activity!r}")
    rotation, tilt = _device_orientation(rng)
    noise = STILL_NOISE if activity == "still" else MOVING_NOISE
    acc_sigma, gyro_sigma = float(rng.uniform(*noise["acc"])), float(rng.uniform(*noise["gyro"]))
    acc = rotation @ acc + rng.normal(0.0, acc_sigma, size=acc.shape)
    gyro = rotation @ gyro + rng.normal(0.0, gyro_sigma, size=gyro.shape)
    params.update(tilt_deg=round(tilt, 3), acc_noise=round(acc_sigma, 4), gyro_noise=round(gyro_sigma, 4))
    return np.concatenate([acc, gyro]).astype(np.float32), params


def render_imu(attributes: Mapping[str, str], rng: np.random.Generator, path: Path) -> dict[str, Any]:
    """Write a ``.npy`` recording of ``attributes["activity"]``; return its parameters."""
    recording, params = synthesize_imu(attributes["activity"], rng)
    with open(path, "wb") as file:
        np.save(file, recording, allow_pickle=False)
    return {"rate_hz": RATE_HZ, "samples": SAMPLES, **params}


Signals = tuple[np.ndarray, np.ndarray, dict[str, Any]]


def _standing(t: np.ndarray, rng: np.random.Generator) -> Signals:
    """Gravity only, and a gyroscope bias of a few thousandths of a rad/s."""
    acc = np.zeros((3, len(t)))
    acc[2] = GRAVITY
    gyro = np.broadcast_to(rng.uniform(-0.005, 0.005, size=(3, 1)), (3, len(t))).copy()
    return acc, gyro, {}


def _gait(t: np.ndarray, gait: Mapping[str, tuple[float, float]], rng: np.random.Generator) -> Signals:
    """Walking or running: a vertical bounce per step, sway per stride, rocking on every axis."""
    step_hz = float(rng.uniform(*gait["step_hz"]))
    drift = 1.0 + 0.04 * np.sin(2 * math.pi * t / rng.uniform(3.0, 8.0) + rng.uniform(0, 2 * math.pi))
    steps = 2 * math.pi * step_hz * np.cumsum(drift) / RATE_HZ + rng.uniform(0, 2 * math.pi)
    bounce, sway, rocking = (float(rng.uniform(*gait[key])) for key in ("bounce", "sway", "gyro"))
    harmonics = rng.uniform(0.2, 0.5), rng.uniform(0.05, 0.25)
    vertical = (
        np.sin(steps)
        + harmonics[0] * np.sin(2 * steps + _phase(rng))
        + harmonics[1] * np.sin(3 * steps + _phase(rng))
    )
    acc = np.stack(
        [
            0.6 * sway * np.sin(steps + _phase(rng)),  # forward: speeds up and slows down every step
            sway * np.sin(steps / 2 + _phase(rng)),  # sideways: left foot, right foot
            GRAVITY + bounce * vertical / (1 + harmonics[0] + harmonics[1]),
        ]
    )
    weights = rng.uniform(0.5, 1.0, size=3)
    gyro = np.stack(
        [
            rocking * weights[0] * np.sin(steps / 2 + _phase(rng)),
            rocking * weights[1] * np.sin(steps + _phase(rng)),
            rocking * weights[2] * np.sin(steps / 2 + _phase(rng)),
        ]
    )
    params = {
        "step_hz": round(step_hz, 3),
        "bounce": round(bounce, 3),
        "sway": round(sway, 3),
        "gyro": round(rocking, 3),
    }
    return acc, gyro, params


def _spinning(t: np.ndarray, rng: np.random.Generator) -> Signals:
    """Turning about the vertical: the gyroscope's z reads the turn rate, the accelerometer a
    centripetal pull towards the axis (fixed in the body frame, growing with the rate squared)."""
    rate = float(rng.uniform(*SPIN_RATE)) * (1 if rng.random() < 0.5 else -1)
    slow = 1.0 + 0.15 * np.sin(2 * math.pi * t / rng.uniform(2.0, 6.0) + _phase(rng))
    turn = rate * slow
    pull, towards = float(rng.uniform(*SPIN_CENTRIPETAL)), float(rng.uniform(0, 2 * math.pi))
    centripetal = pull * slow**2
    wobble = rng.uniform(0.05, 0.2)
    acc = np.stack(
        [centripetal * math.cos(towards), centripetal * math.sin(towards), np.full(len(t), GRAVITY)]
    )
    gyro = np.stack(
        [
            wobble * np.sin(2 * math.pi * 1.3 * t + _phase(rng)),
            wobble * np.sin(2 * math.pi * 0.9 * t + _phase(rng)),
            turn,
        ]
    )
    return acc, gyro, {"turn_rad_s": round(rate, 3), "centripetal": round(pull, 3)}


def _device_orientation(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A rotation from body to device frame: any heading, tilted up to :data:`MAX_TILT_DEG` (uniform
    over that cap of directions), and the tilt in degrees."""
    cos_tilt = rng.uniform(math.cos(math.radians(MAX_TILT_DEG)), 1.0)
    tilt = math.acos(cos_tilt)
    axis_angle, heading = rng.uniform(0, 2 * math.pi, size=2)
    axis = np.array([math.cos(axis_angle), math.sin(axis_angle), 0.0])
    return _rotation(axis, tilt) @ _rotation(np.array([0.0, 0.0, 1.0]), heading), math.degrees(tilt)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation matrix about unit ``axis`` by ``angle`` radians."""
    x, y, z = axis
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def _phase(rng: np.random.Generator) -> float:
    return float(rng.uniform(0, 2 * math.pi))
