"""The anymodal plugin entry point of anymodal-speech: the ``speech`` modality and the ``whisper``
encoder.

Imports none of torch, numpy, decord or whisper: the loader, preprocessor and encoder builder
below import their modules when first called, so listing plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anymodal
from anymodal_speech.options import WhisperEncoderOptions

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION

#: Audio files, and video containers whose sound track is used. Kept here (not imported from
#: ``decode``) so that registering costs no numpy import; a test checks the two lists agree.
FILE_KINDS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".mp4", ".mkv", ".webm", ".mov", ".avi")


def load(path: Path) -> Any:
    """Decode a speech file to 16 kHz mono, keeping its first 30 s; see
    :func:`anymodal_speech.decode.load_speech`."""
    from anymodal_speech.decode import load_speech

    return load_speech(path)


def preprocess(decoded: Any, n_mels: int = 80) -> Any:
    """Decoded speech -> Whisper log-mel, float32 ``[n_mels, 3000]`` (the first 30 s only);
    see :func:`anymodal_speech.frontend.preprocess`."""
    from anymodal_speech.frontend import preprocess as whisper_log_mel

    return whisper_log_mel(decoded, n_mels=n_mels)


def build_encoder(modality: str, options: WhisperEncoderOptions | None) -> Any:
    """Whisper's audio encoder; see :class:`anymodal_speech.encoder.WhisperSpeechEncoder`."""
    from anymodal_speech.encoder import build

    return build(modality, options)


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="speech",
            loader=load,
            preprocess=preprocess,
            file_kinds=FILE_KINDS,
            default_encoder="whisper",
            default_projector="resampler",
            description=(
                "spoken audio (wav, flac, ogg, opus, mp3, m4a, or a video's sound track) as "
                "Whisper's 80/128-bin log-mel of the first 30 seconds"
            ),
        )
    )


@anymodal.hookimpl
def register_encoders(register: Callable[..., None]) -> None:
    register(
        anymodal.EncoderSpec(
            name="whisper",
            build=build_encoder,
            options=WhisperEncoderOptions,
            modalities=("speech",),
            meta_load=True,  # load_weights assigns every tensor from the checkpoint
            description=(
                "OpenAI Whisper's audio encoder (openai-whisper .pt checkpoints, encoder only): "
                "features = 1500 frames of 20 ms, pooled = their mean"
            ),
        )
    )
