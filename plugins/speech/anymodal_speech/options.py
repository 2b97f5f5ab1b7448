"""The ``whisper`` encoder's options and the encoder dimensions of every released Whisper size.

Torch-free: the plugin module imports this to register the options dataclass.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal, NamedTuple

import anymodal

#: Encoder positions of every released Whisper: 3000 mel frames, halved by the stride-2 conv.
N_AUDIO_CTX = 1500

#: Mel-bin counts Whisper's front end supports (its ``mel_filters.npz`` holds these two).
SUPPORTED_N_MELS = (80, 128)


class AudioDims(NamedTuple):
    """The encoder half of Whisper's ``ModelDimensions``."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int


def _dims(n_mels: int, state: int, heads: int, layers: int) -> AudioDims:
    return AudioDims(n_mels, N_AUDIO_CTX, state, heads, layers)


#: Encoder dimensions per size name (specs/reference-models.md §4.1). English-only models share
#: their multilingual sibling's encoder shape; ``large`` means large-v3, as in openai-whisper.
SIZES: dict[str, AudioDims] = {
    "tiny": _dims(80, 384, 6, 4),
    "tiny.en": _dims(80, 384, 6, 4),
    "base": _dims(80, 512, 8, 6),
    "base.en": _dims(80, 512, 8, 6),
    "small": _dims(80, 768, 12, 12),
    "small.en": _dims(80, 768, 12, 12),
    "medium": _dims(80, 1024, 16, 24),
    "medium.en": _dims(80, 1024, 16, 24),
    "large-v1": _dims(80, 1280, 20, 32),
    "large-v2": _dims(80, 1280, 20, 32),
    "large-v3": _dims(128, 1280, 20, 32),
    "large": _dims(128, 1280, 20, 32),
    "large-v3-turbo": _dims(128, 1280, 20, 32),
    "turbo": _dims(128, 1280, 20, 32),
}

WhisperSize = Literal[
    "tiny",
    "tiny.en",
    "base",
    "base.en",
    "small",
    "small.en",
    "medium",
    "medium.en",
    "large-v1",
    "large-v2",
    "large-v3",
    "large",
    "large-v3-turbo",
    "turbo",
]


@dataclass
class WhisperEncoderOptions:
    """Options of the ``whisper`` encoder (``modalities.speech.encoder.options``).

    size:          the Whisper model whose encoder shape is built before weights load; a weights
                   file's own ``dims`` replace it, so this matters only without weights.
    n_mels, n_audio_state, n_audio_head, n_audio_layer:
                   overrides of the size's dimensions (tiny test encoders, unreleased shapes).
    """

    size: WhisperSize = "base"
    n_mels: int | None = None
    n_audio_state: int | None = None
    n_audio_head: int | None = None
    n_audio_layer: int | None = None

    def __post_init__(self) -> None:
        self.dims()  # fail when the options are made, not when the model is built

    def dims(self) -> AudioDims:
        """The size's encoder dimensions with the overrides applied, validated."""
        if self.size not in SIZES:
            close = difflib.get_close_matches(str(self.size), SIZES, n=1)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            raise anymodal.UsageError(
                f"unknown Whisper size {self.size!r}{suggestion}",
                hint=f"modalities.speech.encoder.options.size is one of {', '.join(SIZES)}",
            )
        base = SIZES[self.size]
        dims = AudioDims(
            n_mels=base.n_mels if self.n_mels is None else self.n_mels,
            n_audio_ctx=N_AUDIO_CTX,
            n_audio_state=base.n_audio_state if self.n_audio_state is None else self.n_audio_state,
            n_audio_head=base.n_audio_head if self.n_audio_head is None else self.n_audio_head,
            n_audio_layer=base.n_audio_layer if self.n_audio_layer is None else self.n_audio_layer,
        )
        problem = dims_problem(dims)
        if problem:
            raise anymodal.UsageError(
                f"invalid whisper encoder options: {problem}",
                hint="fix modalities.speech.encoder.options, or drop the overrides to use the size's own",
            )
        return dims


def dims_problem(dims: AudioDims) -> str | None:
    """Why an encoder of these dimensions cannot be built and fed by the front end, or None."""
    if dims.n_mels not in SUPPORTED_N_MELS:
        return f"n_mels is {dims.n_mels}, Whisper's front end makes 80 or 128 mel bins"
    if dims.n_audio_ctx != N_AUDIO_CTX:
        return f"n_audio_ctx is {dims.n_audio_ctx}, the 30-second window gives {N_AUDIO_CTX} positions"
    if dims.n_audio_state < 4 or dims.n_audio_state % 2:
        return f"n_audio_state is {dims.n_audio_state}, it must be even and at least 4"
    if dims.n_audio_head < 1 or dims.n_audio_state % dims.n_audio_head:
        return f"n_audio_head {dims.n_audio_head} does not divide n_audio_state {dims.n_audio_state}"
    if dims.n_audio_layer < 0:
        return f"n_audio_layer is {dims.n_audio_layer}, it must be 0 or more"
    return None
