"""The anymodal entry point of anymodal-video: registers the ``video`` modality.

Imports neither torch, numpy nor decord: the loader and preprocessor import their modules when a
video is actually read, so ``anymodal plugins`` and friends stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anymodal

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION

#: Containers decord (FFmpeg) reads; core refuses other suffixes before the loader runs.
FILE_KINDS = ("mp4", "mkv", "webm", "mov", "avi", "m4v")


def load(path: Path) -> Any:
    """Open and check a video (see :func:`anymodal_video.decode.open_video`); frames are read later."""
    from anymodal_video.decode import open_video

    return open_video(path)


def preprocess(video: Any, **options: Any) -> Any:
    """A loaded video -> float32 ``[clips * crops, 3, frames_per_clip, size, size]`` (default
    ``[15, 3, 2, 224, 224]``); see :func:`anymodal_video.preprocessing.preprocess_video`."""
    from anymodal_video.preprocessing import preprocess_video

    return preprocess_video(video, **options)


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="video",
            loader=load,
            preprocess=preprocess,
            file_kinds=FILE_KINDS,
            default_encoder="imagebind",
            default_projector="linear",
            description="video files (decord): 5 clips of 2 s, 2 frames each, 3 crops of 224 px, "
            "as ImageBind's vision trunk expects",
        )
    )
