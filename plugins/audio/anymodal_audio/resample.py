"""Band-limited sample-rate conversion: a Kaiser-windowed sinc, run as a polyphase convolution.

ImageBind resamples with ``torchaudio.functional.resample`` (Hann-windowed sinc, 6 zero crossings,
rolloff 0.99), which is not available here. This resampler is a better filter rather than a
bit-exact copy, so a file that needs resampling gives features close to, not identical with,
ImageBind's:

* cutoff ``rolloff · min(orig, new) / 2`` with ``rolloff = 0.92``, Kaiser window ``beta = 8.6``
  over ±32 zero crossings of the sinc. For 44.1 kHz → 16 kHz this is flat to about 0.01 dB up to
  6.5 kHz and attenuates by more than 80 dB from 8 kHz (the new Nyquist) on, so nothing aliases
  audibly; ``test_audio_resample.py`` checks a 1 kHz tone keeps its frequency and amplitude.
* the ratio is reduced by the gcd (44100/16000 → 441/160); each of the 160 output phases gets
  its own taps, and one strided ``conv1d`` computes them all.

The output is computed in chunks of whole filter blocks on a grid fixed by the signal's length
(:data:`CHUNK_SAMPLES` output samples each), so :func:`resample_range` can compute any stretch of
the output from the input samples under it (plus the filter's reach) and get exactly, bit for bit,
what :func:`resample` computes over the whole signal: the same chunks, from the same samples, with
the same zeros beyond the ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

ROLLOFF = 0.92
ZERO_CROSSINGS = 32
KAISER_BETA = 8.6
#: Output samples per chunk of the convolution, rounded down to whole blocks of ``new`` samples.
CHUNK_SAMPLES = 16384

#: Most taps of a dense polyphase kernel (``new`` phases × ``orig + 2·pad + 1``). Above it (rates
#: with a large reduced ratio, such as 44056 → 16000 = 5507/2000) each phase keeps only the taps it
#: can reach, and chunks shrink so one chunk's gathered input stays this size.
DENSE_KERNEL_LIMIT = 2**20

#: ``read(a, b)`` gives input samples ``[a, b)`` as float32 ``[channels, b - a]``.
Reader = Callable[[int, int], torch.Tensor]


def _reach(orig: int, new: int) -> tuple[float, float, int]:
    """The filter's cutoff (in units of the reduced rates), half width and left padding (in input
    samples)."""
    cutoff = ROLLOFF * min(orig, new) / 2.0
    half_width = ZERO_CROSSINGS * orig / (2.0 * cutoff)
    return cutoff, half_width, math.ceil(half_width)


def _taps(distance: np.ndarray, cutoff: float, half_width: float, orig: int) -> torch.Tensor:
    """The windowed sinc at ``distance`` input samples from the output instant, as float32."""
    sinc = (2.0 * cutoff / orig) * np.sinc(2.0 * cutoff * distance / orig)
    inside = np.abs(distance) <= half_width
    window = np.zeros_like(distance)
    window[inside] = np.i0(KAISER_BETA * np.sqrt(1.0 - (distance[inside] / half_width) ** 2))
    window /= np.i0(KAISER_BETA)
    return torch.from_numpy(sinc * window).to(torch.float32)


@lru_cache(maxsize=8)
def _polyphase_kernel(orig: int, new: int) -> tuple[torch.Tensor, int]:
    """Taps ``[new, 1, taps]`` (float32) for reduced rates ``orig → new``, and the left padding."""
    cutoff, half_width, pad = _reach(orig, new)
    taps = 2 * pad + orig + 1
    # Output phase p sits at input position p·orig/new past its frame's first sample; tap i reads
    # input sample i - pad, so the filter is evaluated at the distance between the two.
    phase = np.arange(new, dtype=np.float64)[:, None] * orig / new
    distance = np.arange(taps, dtype=np.float64)[None, :] - pad - phase
    return _taps(distance, cutoff, half_width, orig).unsqueeze(1), pad


@lru_cache(maxsize=8)
def _sparse_kernel(orig: int, new: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The same filter keeping only the ``2·pad + 2`` taps each phase can reach: weights
    ``[new, width]``, each phase's first tap index ``[new]`` (int64), and the left padding."""
    cutoff, half_width, pad = _reach(orig, new)
    width = 2 * pad + 2
    phase = np.arange(new, dtype=np.float64) * orig / new
    first = np.ceil(phase - half_width).astype(np.int64) + pad
    distance = (first[:, None] + np.arange(width)[None, :]) - pad - phase[:, None]
    return _taps(distance, cutoff, half_width, orig), torch.from_numpy(first), pad


def _reduced(orig_rate: int, new_rate: int) -> tuple[int, int]:
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {new_rate}")
    gcd = math.gcd(int(orig_rate), int(new_rate))
    return int(orig_rate) // gcd, int(new_rate) // gcd


def resampled_length(samples: int, orig_rate: int, new_rate: int) -> int:
    """``ceil(samples · new_rate / orig_rate)``: how many samples :func:`resample` returns."""
    orig, new = _reduced(orig_rate, new_rate)
    return -(-samples * new // orig)


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample ``[channels, samples]`` float audio from ``orig_rate`` to ``new_rate`` Hz.

    Returns ``[channels, ceil(samples · new_rate / orig_rate)]`` float32; the same tensor (as
    float32) when the rates are equal.
    """
    _reduced(orig_rate, new_rate)
    waveform = waveform.to(torch.float32)
    if orig_rate == new_rate:
        return waveform
    channels, samples = waveform.shape
    return resample_range(
        lambda a, b: waveform[:, a:b],
        samples,
        channels,
        orig_rate,
        new_rate,
        0,
        resampled_length(samples, orig_rate, new_rate),
    )


def resample_range(
    read: Reader, samples: int, channels: int, orig_rate: int, new_rate: int, start: int, stop: int
) -> torch.Tensor:
    """Output samples ``[start, stop)`` of :func:`resample` of a ``samples``-long signal, reading
    only the input under them (and the filter's reach on either side) through ``read``, once.

    ``stop`` is clamped to the output's length. Equal to ``resample(whole)[:, start:stop]`` bit for
    bit, given ``read`` returns the same samples the whole signal holds.
    """
    orig, new = _reduced(orig_rate, new_rate)
    total = resampled_length(samples, orig_rate, new_rate)
    stop = min(max(stop, 0), total)
    start = min(max(start, 0), stop)
    if orig_rate == new_rate or start == stop:
        return read(start, stop).to(torch.float32)
    _, _, pad = _reach(orig, new)
    dense = new * (2 * pad + orig + 1) <= DENSE_KERNEL_LIMIT
    if dense:
        kernel, _ = _polyphase_kernel(orig, new)
        reach = kernel.shape[-1]
        per_chunk = max(CHUNK_SAMPLES // new, 1)
    else:
        weights, first, _ = _sparse_kernel(orig, new)
        reach = int(first.max()) + weights.shape[1]
        per_chunk = max(DENSE_KERNEL_LIMIT // weights.numel(), 1)
    blocks = -(-total // new)
    chunks = range(start // new // per_chunk, (stop - 1) // new // per_chunk + 1)
    # Chunk c filters padded input [b0·orig, (b1 - 1)·orig + reach) for its blocks [b0, b1); the
    # padded signal is the input shifted right by `pad`, with zeros beyond either end.
    first_block = chunks[0] * per_chunk
    last_block = min((chunks[-1] + 1) * per_chunk, blocks)
    span = _padded(read, samples, channels, first_block * orig - pad, (last_block - 1) * orig - pad + reach)
    pieces = []
    for chunk in chunks:
        b0, b1 = chunk * per_chunk, min((chunk + 1) * per_chunk, blocks)
        segment = span[:, (b0 - first_block) * orig : (b1 - 1 - first_block) * orig + reach]
        if dense:
            phases = torch.nn.functional.conv1d(segment.contiguous().unsqueeze(1), kernel, stride=orig)
            # [channels, new phases, blocks] -> interleave the phases -> [channels, time]
            pieces.append(phases.transpose(1, 2).reshape(channels, -1))
        else:
            pieces.append(_sparse_blocks(segment, weights, first, orig, b1 - b0))
    offset = first_block * new
    return torch.cat(pieces, dim=1)[:, start - offset : stop - offset]


def _sparse_blocks(
    segment: torch.Tensor, weights: torch.Tensor, first: torch.Tensor, orig: int, count: int
) -> torch.Tensor:
    """``count`` blocks of output from ``segment`` with the sparse kernel: output phase p of block b
    is the dot product of ``weights[p]`` with ``segment[b·orig + first[p] :][:width]``."""
    width = weights.shape[1]
    index = (torch.arange(count)[:, None, None] * orig + first[None, :, None]) + torch.arange(width)
    rows = [(channel[index] * weights).sum(dim=-1).reshape(-1) for channel in segment]
    return torch.stack(rows)


def _padded(read: Reader, samples: int, channels: int, low: int, high: int) -> torch.Tensor:
    """Input samples ``[low, high)``, zero where the range passes either end of the signal."""
    a, b = min(max(low, 0), samples), max(min(high, samples), 0)
    b = max(a, b)
    middle = read(a, b).to(torch.float32) if b > a else torch.zeros(channels, 0)
    left = torch.zeros(channels, a - low)
    right = torch.zeros(channels, high - low - (a - low) - middle.shape[1])
    return torch.cat([left, middle, right], dim=1)
