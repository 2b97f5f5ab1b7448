"""ImageBind's audio preprocessing: three 2-second clips, each a normalised 128×204 log-mel image.

For one input (``specs/reference-models.md`` §2.2 clip sampler, §2.3 audio):

1. resample to 16 kHz;
2. choose clips as pytorchvideo's ``ConstantClipsPerVideoSampler(clip_duration=2,
   clips_per_video=3)`` does, with its exact ``Fraction`` arithmetic, and slice samples
   ``[int(start·rate) : int(end·rate)]`` (a clip past the end is simply shorter);
3. per clip: subtract the clip's mean over all channels and samples (as ImageBind does, although
   the filter bank then reads channel 0 only), Kaldi fbank with 128 mel bins, transpose to
   ``[128, frames]``, zero-pad on the right or truncate to 204 frames, then normalise
   ``(x - mean) / std`` with mean -4.268 and std 9.138 (so padding becomes ≈ 0.467).

The result is ``[clips, 1, 128, 204]``; the encoder averages its embeddings over the clips.

Only the clips are read and resampled: a file the loader left unread (``source.AudioFile``) is
decoded at each clip (a seek and a read), and the resampler computes each clip from the input
under it plus the filter's reach (``resample.resample_range``), which is bit for bit what
resampling the whole file and slicing it gives. So an hour-long file costs three clips, in time and
in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import torch

import anymodal
from anymodal_audio.fbank import kaldi_fbank
from anymodal_audio.resample import resample_range, resampled_length

logger = logging.getLogger(__name__)

IMAGEBIND_AUDIO_MEAN = -4.268
IMAGEBIND_AUDIO_STD = 9.138


def clip_boundaries(
    duration: float, clip_duration: float | Fraction = 2, clips: int = 3
) -> list[tuple[Fraction, Fraction]]:
    """``(start, end)`` in seconds of each clip, as ``ConstantClipsPerVideoSampler`` yields them.

    ``duration`` is a float (samples / rate), as ImageBind computes it: ``duration - clip_duration``
    is taken in float and only then made an exact Fraction, so 7.3 s gives a middle clip starting
    at 2.6499999999999999… s, not 2.65 s, which moves its first sample down by one.
    """
    length = Fraction(clip_duration)
    max_start = Fraction(max(duration - float(length), 0.0))
    return [(start, start + length) for start in anymodal.clip_starts(max_start, clips)]


def clip_slices(
    num_samples: int, sample_rate: int, clip_duration: float = 2.0, clips: int = 3
) -> list[slice]:
    """Sample ranges ``[int(start·rate), int(end·rate))`` of each clip of a ``num_samples`` signal."""
    return [
        slice(int(start * sample_rate), int(end * sample_rate))
        for start, end in clip_boundaries(num_samples / sample_rate, clip_duration, clips)
    ]


def clip_to_melspec(
    clip: torch.Tensor,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    target_length: int = 204,
    mean: float = IMAGEBIND_AUDIO_MEAN,
    std: float = IMAGEBIND_AUDIO_STD,
) -> torch.Tensor:
    """One clip ``[channels, samples]`` → normalised log-mel ``[1, num_mel_bins, target_length]``."""
    clip = clip - clip.mean()
    melspec = kaldi_fbank(clip, sample_rate=sample_rate, num_mel_bins=num_mel_bins).T  # [bins, frames]
    frames = melspec.shape[1]
    if frames and abs(target_length - frames) / frames > 0.2:
        logger.debug("audio clip has %d frames, padded or cut to %d", frames, target_length)
    if frames < target_length:
        melspec = torch.nn.functional.pad(melspec, (0, target_length - frames))
    melspec = melspec[:, :target_length]
    return ((melspec - mean) / std).unsqueeze(0)


def preprocess(
    decoded: Any,
    clips: int = 3,
    clip_duration: float = 2.0,
    target_length: int = 204,
    num_mel_bins: int = 128,
    sample_rate: int = 16000,
    mean: float = IMAGEBIND_AUDIO_MEAN,
    std: float = IMAGEBIND_AUDIO_STD,
) -> torch.Tensor:
    """A loaded file (``AudioFile`` or ``DecodedAudio``) → ``[clips, 1, num_mel_bins, target_length]``
    float32.

    ``decoded`` may also be a ``[channels, samples]`` tensor or array already at ``sample_rate``.
    """
    length, read = _signal(decoded, sample_rate)
    melspecs = []
    clip_cache: dict[tuple[int, int], torch.Tensor] = {}
    for span in clip_slices(length, sample_rate, clip_duration, clips):
        bounds = (min(span.start, length), min(span.stop, length))
        if bounds not in clip_cache:  # a short file's clips all start at 0: read it once
            clip_cache[bounds] = read(*bounds)
        melspecs.append(
            clip_to_melspec(clip_cache[bounds], sample_rate, num_mel_bins, target_length, mean, std)
        )
    return torch.stack(melspecs)


def _signal(decoded: Any, sample_rate: int) -> tuple[int, Callable[[int, int], torch.Tensor]]:
    """The length at ``sample_rate`` of what ``decoded`` holds, and a reader of its samples there."""
    if hasattr(decoded, "read") and hasattr(decoded, "sample_rate") and hasattr(decoded, "frames"):
        frames, channels, rate = int(decoded.frames), int(decoded.channels), int(decoded.sample_rate)

        def source(start: int, stop: int) -> torch.Tensor:
            return torch.as_tensor(decoded.read(start, stop), dtype=torch.float32)

        def resampled(start: int, stop: int) -> torch.Tensor:
            return resample_range(source, frames, channels, rate, sample_rate, start, stop)

        return resampled_length(frames, rate, sample_rate), resampled
    if hasattr(decoded, "samples") and hasattr(decoded, "sample_rate"):
        waveform = torch.as_tensor(decoded.samples, dtype=torch.float32)
        rate = int(decoded.sample_rate)
        frames, channels = waveform.shape[-1], waveform.shape[0]

        def resampled_array(start: int, stop: int) -> torch.Tensor:
            return resample_range(
                lambda a, b: waveform[:, a:b], frames, channels, rate, sample_rate, start, stop
            )

        return resampled_length(frames, rate, sample_rate), resampled_array
    waveform = torch.as_tensor(decoded, dtype=torch.float32)
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2:
        raise ValueError(f"expected audio [channels, samples], got shape {tuple(waveform.shape)}")
    return waveform.shape[1], lambda start, stop: waveform[:, start:stop]
