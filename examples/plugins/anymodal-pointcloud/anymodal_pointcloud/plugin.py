"""The anymodal entry point of anymodal-pointcloud: registers the ``pointcloud`` modality and
its ``pointnet`` encoder.

anymodal imports this module to list plugins and to build ``anymodal chat --help``, so it imports
nothing heavy: numpy loads with ``anymodal_pointcloud.loader`` when a file is read, torch with
``anymodal_pointcloud.encoder`` when the encoder is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anymodal

from anymodal_pointcloud.options import CHANNELS, DEFAULT_NUM_POINTS, PointNetOptions

#: The plugin contract this plugin was written for; anymodal refuses it if it speaks another one.
ANYMODAL_CONTRACT = 1

FILE_KINDS = ("npy",)

DESCRIPTION = "lidar-style point clouds as .npy arrays of x, y, z points ([N, 3])"


def load(path: Path) -> Any:
    """Decode one file to float32 ``[N, 3]``; see :func:`anymodal_pointcloud.loader.load`."""
    from anymodal_pointcloud.loader import load as load_file

    return load_file(path)


def preprocess(points: Any, num_points: int = DEFAULT_NUM_POINTS, frame: str = "object") -> Any:
    """``[N, 3]`` -> float32 ``[num_points, 3]``, resampled; centred and unit-scaled in the
    ``object`` frame, as recorded in the ``sensor`` frame; see
    :func:`anymodal_pointcloud.loader.preprocess`."""
    from anymodal_pointcloud.loader import preprocess as to_tensor

    return to_tensor(points, num_points=num_points, frame=frame)


def build_encoder(modality: str, options: PointNetOptions | None) -> Any:
    """The PointNet encoder, random (seeded) until weights are given
    (``modalities.pointcloud.encoder.weights``)."""
    from anymodal_pointcloud.encoder import PointNetEncoder

    return PointNetEncoder(options or PointNetOptions())


def emits(options: Mapping[str, Any]) -> anymodal.TensorLayout:
    """What :func:`preprocess` returns for its options: float32 ``[num_points, 3]``."""
    return anymodal.TensorLayout((options["num_points"], CHANNELS), names=("points", "xyz"))


def takes(modality: str, options: PointNetOptions | None) -> anymodal.TensorLayout:
    """What the PointNet encoder reads: any number of points, x, y, z each."""
    return anymodal.TensorLayout((None, CHANNELS), names=("points", "xyz"))


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="pointcloud",
            loader=load,
            preprocess=preprocess,
            file_kinds=FILE_KINDS,
            default_encoder="pointnet",
            default_projector="linear",
            placeholder="<pointcloud>",
            emits=emits,
            description=DESCRIPTION,
        )
    )


@anymodal.hookimpl
def register_encoders(register: Callable[..., None]) -> None:
    register(
        anymodal.EncoderSpec(
            name="pointnet",
            build=build_encoder,
            options=PointNetOptions,
            modalities=("pointcloud",),
            takes=takes,
            description="PointNet-style: shared per-point MLP, tokens max-pooled around FPS centres, "
            "max+mean pooled vector",
        )
    )
