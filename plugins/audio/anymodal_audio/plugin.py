"""The anymodal plugin entry point of anymodal-audio: registers the ``audio`` modality.

Imports none of torch, numpy, soundfile or decord: the loader and preprocessor below import their
modules when first called, so listing plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anymodal

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION

#: Audio files, and video containers whose audio track is used. Kept here (not imported from
#: ``decode``) so that registering costs no numpy import; a test checks the two lists agree.
FILE_KINDS = ("wav", "flac", "ogg", "mp3", "mp4", "mkv", "webm", "mov", "avi")


def load(path: Path) -> Any:
    """Check an audio file, leaving it to be read clip by clip (or decode a video's audio track);
    see :func:`anymodal_audio.decode.open_audio`."""
    from anymodal_audio.decode import open_audio

    return open_audio(path)


def preprocess(decoded: Any, **options: Any) -> Any:
    """Decoded audio → ``[3, 1, 128, 204]`` float32; see :func:`anymodal_audio.preprocessing.preprocess`."""
    from anymodal_audio.preprocessing import preprocess as imagebind_preprocess

    return imagebind_preprocess(decoded, **options)


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="audio",
            loader=load,
            preprocess=preprocess,
            file_kinds=FILE_KINDS,
            default_encoder="imagebind",
            default_projector="linear",
            description=(
                "sound (wav, flac, ogg, mp3, or a video's audio track) as three 2-second "
                "128-bin log-mel clips, ImageBind's audio input"
            ),
        )
    )
