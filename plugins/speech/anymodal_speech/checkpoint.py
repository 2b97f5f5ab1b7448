"""Reading the encoder half of an openai-whisper checkpoint (``~/.cache/whisper/<size>.pt``).

The format (specs/reference-models.md §4.4): ``torch.load(path, weights_only=True)`` gives a dict
with ``"dims"`` (the ten ``ModelDimensions`` fields as a plain dict) and ``"model_state_dict"``
(``encoder.*`` and ``decoder.*`` tensors, fp16 in the released files). Only ``encoder.*`` tensors
are kept; the file is memory-mapped, so the decoder's bytes are never read. Every problem is a
:class:`anymodal.ModelLoadError` naming the file and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import anymodal
from anymodal_speech.options import AudioDims, dims_problem

ENCODER_PREFIX = "encoder."

_FORMAT_HINT = (
    "use an openai-whisper checkpoint such as ~/.cache/whisper/base.pt "
    "(a dict of 'dims' and 'model_state_dict'; Hugging Face transformers files are a different format)"
)


@dataclass(frozen=True)
class WhisperEncoderCheckpoint:
    """What a checkpoint holds for the encoder: its dimensions and its ``encoder.*`` tensors."""

    path: Path
    dims: AudioDims
    state: dict[str, torch.Tensor]


def read_encoder_checkpoint(path: str | Path) -> WhisperEncoderCheckpoint:
    """The dims and ``encoder.*`` tensors of a Whisper checkpoint, validated; tensors as stored."""
    file = Path(path).expanduser()
    if not file.exists():
        raise anymodal.ModelLoadError(
            f"Whisper checkpoint not found: {file}",
            hint="check modalities.speech.encoder.weights; openai-whisper saves its downloads "
            "as ~/.cache/whisper/<size>.pt",
        )
    if not file.is_file():
        raise anymodal.ModelLoadError(f"Whisper checkpoint is not a file: {file}", hint=_FORMAT_HINT)
    loaded = anymodal.load_torch_file(file, "Whisper checkpoint", hint=_FORMAT_HINT)
    if not isinstance(loaded, Mapping):
        raise anymodal.ModelLoadError(
            f"{file} is not a Whisper checkpoint: it holds a {type(loaded).__name__}, not a dict",
            hint=_FORMAT_HINT,
        )
    absent = [key for key in ("dims", "model_state_dict") if key not in loaded]
    if absent:
        found = ", ".join(repr(key) for key in list(loaded)[:5]) or "nothing"
        raise anymodal.ModelLoadError(
            f"{file} is not a Whisper checkpoint: no {' or '.join(map(repr, absent))} (it holds {found})",
            hint=_FORMAT_HINT,
        )
    dims = _read_dims(file, loaded["dims"])
    state = loaded["model_state_dict"]
    if not isinstance(state, Mapping):
        raise anymodal.ModelLoadError(
            f"{file}: 'model_state_dict' is a {type(state).__name__}, not a dict of tensors",
            hint=_FORMAT_HINT,
        )
    encoder_state = {key: value for key, value in state.items() if str(key).startswith(ENCODER_PREFIX)}
    not_tensors = sorted(key for key, value in encoder_state.items() if not isinstance(value, torch.Tensor))
    if not_tensors:
        raise anymodal.ModelLoadError(
            f"{file}: {_sample(not_tensors)} in 'model_state_dict' are not tensors", hint=_FORMAT_HINT
        )
    return WhisperEncoderCheckpoint(file, dims, encoder_state)


def _read_dims(file: Path, raw: Any) -> AudioDims:
    """The encoder dimensions from the checkpoint's ``dims`` dict (text-side fields are ignored)."""
    if not isinstance(raw, Mapping):
        raise anymodal.ModelLoadError(
            f"{file}: 'dims' is a {type(raw).__name__}, not a dict of ModelDimensions fields",
            hint=_FORMAT_HINT,
        )
    wanted = AudioDims._fields
    missing = [name for name in wanted if name not in raw]
    not_int = [name for name in wanted if name in raw and not _is_int(raw[name])]
    if missing or not_int:
        problems = [f"missing {', '.join(missing)}"] * bool(missing) + [
            f"not integers: {', '.join(f'{n}={raw[n]!r}' for n in not_int)}"
        ] * bool(not_int)
        raise anymodal.ModelLoadError(
            f"{file}: 'dims' is incomplete ({'; '.join(problems)})", hint=_FORMAT_HINT
        )
    dims = AudioDims(*(int(raw[name]) for name in wanted))
    problem = dims_problem(dims)
    if problem:
        raise anymodal.ModelLoadError(
            f"{file}: the speech plugin cannot use this Whisper encoder: {problem}",
            hint="use a released Whisper checkpoint (tiny to large-v3, turbo)",
        )
    return dims


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sample(items: list[str], shown: int = 3) -> str:
    listed = ", ".join(items[:shown])
    return f"{listed} (+{len(items) - shown} more)" if len(items) > shown else listed
