"""The anymodal entry point of anymodal-imu: registers the ``imu`` modality.

Imports nothing heavy: numpy and torch load with :mod:`anymodal_imu.preprocessing`, the first time
a recording is decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anymodal

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION

FILE_KINDS = ("npy", "csv")

#: Numbers per time step: accelerometer x, y, z, then gyroscope x, y, z (what ImageBind's IMU trunk reads).
CHANNELS = 6


def load(path: Path) -> Any:
    """Decode a ``(6, T)`` or ``(T, 6)`` recording (``.npy`` or ``.csv``) to float32 ``[6, T]``."""
    from anymodal_imu.preprocessing import load_imu

    return load_imu(path)


def preprocess(recording: Any, length: int = 2000, mode: str = "crop") -> Any:
    """``[6, T]`` -> float32 ``[6, length]``: centre crop or end zero-pad (``crop``), or ``resample``."""
    from anymodal_imu.preprocessing import preprocess_imu

    return preprocess_imu(recording, length=length, mode=mode)


def emits(options: Mapping[str, Any]) -> anymodal.TensorLayout:
    """What :func:`preprocess` returns for its options: float32 ``[6, length]``, whatever the mode."""
    return anymodal.TensorLayout((CHANNELS, options["length"]), names=("channels", "samples"))


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="imu",
            loader=load,
            preprocess=preprocess,
            file_kinds=FILE_KINDS,
            default_encoder="imagebind",
            default_projector="linear",
            emits=emits,
            description="6-axis IMU recordings (npy, csv; accelerometer xyz then gyroscope xyz) "
            "as ImageBind's 6 x 2000 input",
        )
    )
