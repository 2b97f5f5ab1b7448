"""Kaldi log-mel filter bank in plain torch, as ``torchaudio.compliance.kaldi.fbank`` computes it.

ImageBind calls torchaudio's Kaldi fbank with ``htk_compat=True, use_energy=False,
window_type="hanning", dither=0.0, frame_length=25, frame_shift=10`` and leaves everything else
at Kaldi's defaults. Those defaults are part of the model's input distribution, so this module
spells every one of them out (see ``specs/reference-models.md`` §2.3):

* channel 0 only for multichannel input (torchaudio's ``channel=-1`` clamps to 0);
* frames with ``snip_edges=True``: ``1 + (samples - 400) // 160`` frames, none past the end;
* per-frame DC removal, then pre-emphasis 0.97 where the first sample uses itself as its
  predecessor (``x[0] - 0.97·x[0]``);
* symmetric Hann window ``hann_window(400, periodic=False)``, zero-padded to a 512-point FFT
  (``round_to_power_of_two``), power spectrum;
* Kaldi mel banks on ``1127·ln(1 + f/700)`` from ``low_freq=20`` to ``high_freq=0`` (Nyquist),
  triangles not area-normalised, and a zero weight on the Nyquist FFT bin;
* natural log with a float32-eps floor.

``htk_compat`` only moves the energy column, which ``use_energy=False`` drops, so it changes nothing
here. No torchaudio fast path: torchaudio is not needed, and a second path would be untestable
where it is not installed.
"""

from __future__ import annotations

import math

import torch

#: torchaudio floors mel energies at ``torch.finfo(torch.float).eps`` before the log.
LOG_FLOOR = torch.finfo(torch.float32).eps


def mel_scale(freq: torch.Tensor) -> torch.Tensor:
    """Kaldi's mel scale, ``1127·ln(1 + f/700)``."""
    return 1127.0 * torch.log1p(freq / 700.0)


def kaldi_mel_banks(
    num_mel_bins: int,
    fft_size: int = 512,
    sample_rate: float = 16000.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """Triangular Kaldi mel filters over the ``fft_size // 2 + 1`` power-spectrum bins.

    Returns ``[num_mel_bins, fft_size // 2 + 1]`` float32. ``high_freq <= 0`` counts down from the
    Nyquist frequency, as Kaldi does. The last column (Nyquist) is always zero, as in Kaldi. With
    many bins at a low rate, the lowest filters can fall between FFT bins and be all-zero rows.
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"need 0 <= low_freq < high_freq <= {nyquist:g}, got {low_freq:g}, {high_freq:g}")
    num_fft_bins = fft_size // 2
    # float64 keeps the triangle edges exact enough that rounding never decides a bin's weight.
    mel_low = 1127.0 * math.log1p(low_freq / 700.0)
    mel_high = 1127.0 * math.log1p(high_freq / 700.0)
    mel_delta = (mel_high - mel_low) / (num_mel_bins + 1)
    left = mel_low + mel_delta * torch.arange(num_mel_bins, dtype=torch.float64).unsqueeze(1)
    center = left + mel_delta
    right = center + mel_delta
    fft_mel = mel_scale(torch.arange(num_fft_bins, dtype=torch.float64) * (sample_rate / fft_size))
    rising = (fft_mel - left) / (center - left)
    falling = (right - fft_mel) / (right - center)
    banks = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).to(torch.float32)


def empty_mel_bins(num_mel_bins: int, sample_rate: float = 16000.0, fft_size: int = 512) -> list[int]:
    """Indices of mel filters that cover no FFT bin (their log-energy is always ``ln(eps)``)."""
    banks = kaldi_mel_banks(num_mel_bins, fft_size=fft_size, sample_rate=sample_rate)
    return [int(i) for i in torch.nonzero(banks.sum(dim=1) == 0).flatten()]


def kaldi_fbank(
    waveform: torch.Tensor,
    sample_rate: float = 16000.0,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """Log-mel filter bank of ``waveform`` ``[channels, samples]`` (or ``[samples]``).

    Returns ``[frames, num_mel_bins]`` float32 with ``frames = 1 + (samples - window) // shift``
    (0 frames when the input is shorter than one window). Only channel 0 is used.
    """
    signal = waveform if waveform.dim() == 1 else waveform[0]
    signal = signal.to(torch.float32)
    window_size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    fft_size = 1 << (window_size - 1).bit_length()
    banks = kaldi_mel_banks(num_mel_bins, fft_size, sample_rate, low_freq, high_freq)
    if signal.numel() < window_size:
        return torch.empty(0, num_mel_bins, dtype=torch.float32)

    frames = signal.unfold(0, window_size, shift)  # [frames, window]
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - preemphasis * previous
    frames = frames * torch.hann_window(window_size, periodic=False, dtype=torch.float32)
    spectrum = torch.fft.rfft(frames, n=fft_size).abs().pow(2.0)  # [frames, fft_size // 2 + 1]
    energies = spectrum @ banks.T
    return torch.clamp(energies, min=LOG_FLOOR).log()
