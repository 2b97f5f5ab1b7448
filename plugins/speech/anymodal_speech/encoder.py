"""The ``whisper`` encoder: openai-whisper's ``AudioEncoder``, alone, behind anymodal's contract.

``forward(mel [B, n_mels, 3000]) -> EncoderOutput(features [B, 1500, n_audio_state],
pooled [B, n_audio_state])``, the pooled vector being the mean over the 1500 positions (20 ms
each). The inner module is the attribute ``encoder``, so this module's state-dict keys are the
checkpoint's own ``encoder.*`` keys. Whisper's decoder is never built.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import anymodal
from anymodal_speech.checkpoint import read_encoder_checkpoint
from anymodal_speech.options import AudioDims, WhisperEncoderOptions


class Float32LayerNorm(nn.LayerNorm):
    """Whisper's LayerNorm, computed in float32 whatever the dtype of its input *and* weights.

    openai-whisper keeps weights in float32 and casts activations, so its LayerNorm only casts the
    input; anymodal casts a whole encoder to the model dtype (bfloat16 on GPU), and a float32 input
    with bfloat16 weights is an error in torch. Same state-dict keys, same float32 result.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).type(x.dtype)


def _audio_encoder(dims: AudioDims) -> nn.Module:
    """openai-whisper's ``AudioEncoder`` of ``dims``, its LayerNorms made :class:`Float32LayerNorm`."""
    from whisper.model import AudioEncoder

    encoder: nn.Module = AudioEncoder(
        dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer
    )
    for parent in list(encoder.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.LayerNorm):
                replacement = Float32LayerNorm(child.normalized_shape, eps=child.eps)
                replacement.weight, replacement.bias = child.weight, child.bias
                setattr(parent, name, replacement)
    return encoder


class WhisperSpeechEncoder(nn.Module):
    """Whisper's audio encoder: log-mel ``[B, n_mels, 3000]`` -> ``[B, 1500, n_audio_state]``."""

    def __init__(self, dims: AudioDims) -> None:
        super().__init__()
        self._set_encoder(_audio_encoder(dims), dims)

    def _set_encoder(self, encoder: nn.Module, dims: AudioDims) -> None:
        self.encoder = encoder
        self.dims = dims
        self.geometry = anymodal.EncoderGeometry(
            feature_dim=dims.n_audio_state, num_tokens=dims.n_audio_ctx, pooled_dim=dims.n_audio_state
        )

    def load_weights(self, path: str | Path) -> None:
        """Load the encoder of an openai-whisper checkpoint; its ``dims`` decide the architecture.

        fp16 tensors (as released) are loaded as float32, then the module keeps the device and
        dtype it had. Missing, unexpected or mis-shaped ``encoder.*`` tensors are a ModelLoadError
        listing a few of them.
        """
        checkpoint = read_encoder_checkpoint(path)
        # Built on the meta device: no time spent on a random init the checkpoint overwrites.
        with torch.device("meta"):
            encoder = _audio_encoder(checkpoint.dims)
        expected = {f"encoder.{key}": value for key, value in encoder.state_dict().items()}
        problems = anymodal.state_dict_mismatches(expected, checkpoint.state)
        if problems:
            raise anymodal.ModelLoadError(
                f"{checkpoint.path} does not fit Whisper's encoder with its own dims "
                f"({_describe(checkpoint.dims)}): {'; '.join(problems)}",
                hint="the file is damaged or not an openai-whisper checkpoint; download it again",
            )
        state = {
            # A copy, so no parameter stays backed by the memory-mapped file.
            key.removeprefix("encoder."): value.to(
                torch.float32 if value.is_floating_point() else value.dtype, copy=True
            )
            for key, value in checkpoint.state.items()
        }
        encoder.load_state_dict(state, strict=True, assign=True)
        device, dtype = self._placement()
        self._set_encoder(encoder.to(device=device, dtype=dtype), checkpoint.dims)

    def _placement(self) -> tuple[torch.device, torch.dtype]:
        parameter = next(self.encoder.parameters(), None)
        if parameter is None or parameter.device.type == "meta":
            return torch.device("cpu"), torch.float32
        return parameter.device, parameter.dtype

    def forward(self, mel: torch.Tensor) -> anymodal.EncoderOutput:
        """``mel [B, n_mels, 3000]`` -> features ``[B, 1500, state]``, pooled ``[B, state]``."""
        if mel.ndim != 3 or mel.shape[1] != self.dims.n_mels:
            got = f"{mel.shape[1]} mel bins" if mel.ndim == 3 else f"shape {list(mel.shape)}"
            raise anymodal.UsageError(
                f"the whisper encoder expects log-mel input [batch, {self.dims.n_mels}, "
                f"{2 * self.dims.n_audio_ctx}] but got {got}",
                hint=f"set modalities.speech.preprocess.n_mels to {self.dims.n_mels}, the encoder's n_mels "
                "(80 for Whisper tiny to large-v2, 128 for large-v3 and turbo)",
            )
        if mel.shape[2] != 2 * self.dims.n_audio_ctx:
            raise anymodal.UsageError(
                f"the whisper encoder expects {2 * self.dims.n_audio_ctx} mel frames (30 s) but got "
                f"{mel.shape[2]}",
                hint="preprocess speech with the speech plugin's preprocessor, which pads or cuts to 30 s",
            )
        features = self.encoder(mel)
        return anymodal.EncoderOutput(features, features.mean(dim=1))


def build(modality: str, options: WhisperEncoderOptions | Mapping[str, Any] | None) -> WhisperSpeechEncoder:
    """The encoder for ``modality`` (``speech``), randomly initialised until ``load_weights``."""
    given = options or {}
    chosen = given if isinstance(given, WhisperEncoderOptions) else WhisperEncoderOptions(**given)
    return WhisperSpeechEncoder(chosen.dims())


def _describe(dims: AudioDims) -> str:
    return ", ".join(f"{name}={value}" for name, value in dims._asdict().items())
