"""Whisper's log-mel front end: 16 kHz mono samples -> float32 ``[n_mels, 3000]``.

The steps are openai-whisper's own (``whisper.audio``, specs/reference-models.md §4.2):
pad or trim to 30 s (480,000 samples), STFT with a 400-point periodic Hann window and hop 160,
drop the last frame, power, Slaney mel filters (80, or 128 for large-v3 and turbo),
``log10(max(x, 1e-10))``, floor at the maximum minus 8, then ``(x + 4) / 4``. Audio longer than
30 s is cut: Whisper's encoder sees one 30-second window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import anymodal
from anymodal_speech.decode import WINDOW_SAMPLES, DecodedSpeech
from anymodal_speech.options import SUPPORTED_N_MELS

if TYPE_CHECKING:
    import torch

#: Mel frames per window: 480,000 samples / hop 160.
N_FRAMES = 3000


def log_mel(samples: np.ndarray, n_mels: int = 80) -> torch.Tensor:
    """``samples`` (float ``[n]``, 16 kHz mono) -> float32 ``[n_mels, 3000]``, the first 30 s."""
    import torch
    from whisper.audio import log_mel_spectrogram, pad_or_trim

    audio = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
    window = pad_or_trim(audio[:WINDOW_SAMPLES], WINDOW_SAMPLES)
    mel = log_mel_spectrogram(torch.from_numpy(np.ascontiguousarray(window)), n_mels=n_mels)
    return mel.to(torch.float32).contiguous()


def preprocess(decoded: DecodedSpeech | np.ndarray, n_mels: int = 80) -> torch.Tensor:
    """A decoded file (or 16 kHz mono samples) -> float32 ``[n_mels, 3000]``.

    ``n_mels`` comes from ``modalities.speech.preprocess.n_mels`` and must match the encoder:
    80 for Whisper tiny to large-v2, 128 for large-v3 and turbo. A file longer than 30 s is cut to
    its first 30 s, the one window Whisper's encoder sees.
    """
    if isinstance(n_mels, bool) or n_mels not in SUPPORTED_N_MELS:
        raise anymodal.UsageError(
            f"Whisper's front end makes 80 or 128 mel bins, not {n_mels!r}",
            hint="set modalities.speech.preprocess.n_mels to 80 (tiny to large-v2) or 128 (large-v3, turbo)",
        )
    samples = decoded.samples if isinstance(decoded, DecodedSpeech) else decoded
    return log_mel(samples, n_mels)
