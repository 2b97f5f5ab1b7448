"""Clip sampling, padding and normalisation follow ImageBind's load_and_transform_audio_data."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from anymodal_audio.decode import DecodedAudio
from anymodal_audio.fbank import empty_mel_bins, kaldi_fbank
from anymodal_audio.preprocessing import clip_boundaries, clip_slices, clip_to_melspec, preprocess

RATE = 16000
PAD_VALUE = 4.268 / 9.138  # a zero pad after (x + 4.268) / 9.138


def test_short_audio_repeats_one_clip_from_zero() -> None:
    assert clip_boundaries(1.0) == [(Fraction(0), Fraction(2))] * 3
    assert clip_slices(RATE, RATE) == [slice(0, 32000)] * 3


def test_two_second_audio_gives_three_identical_clips() -> None:
    assert clip_slices(2 * RATE, RATE) == [slice(0, 32000)] * 3


def test_seven_point_three_seconds_uses_float_then_fraction_arithmetic() -> None:
    # 7.3 - 2 is taken in float (5.29999999999999982…), so the later clips start one sample earlier
    # than decimal arithmetic would put them (42400, 84800).
    starts = [start for start, _ in clip_boundaries(116800 / RATE)]
    assert starts == [0, Fraction(7.3 - 2.0) / 2, Fraction(7.3 - 2.0)]
    assert clip_slices(116800, RATE) == [slice(0, 32000), slice(42399, 74399), slice(84799, 116799)]


def test_clip_count_and_duration_options() -> None:
    assert clip_slices(10 * RATE, RATE, clip_duration=2.5, clips=5) == [
        slice(0, 40000),
        slice(30000, 70000),
        slice(60000, 100000),
        slice(90000, 130000),
        slice(120000, 160000),
    ]
    assert clip_slices(10 * RATE, RATE, clips=1) == [slice(0, 32000)]


def noise(seconds: float, channels: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(channels, int(seconds * RATE), generator=generator)


def test_two_second_clip_has_198_frames_then_padding() -> None:
    melspecs = preprocess(noise(2.0))
    assert melspecs.shape == (3, 1, 128, 204)
    assert melspecs.dtype == torch.float32
    assert torch.allclose(melspecs[:, :, :, 198:], torch.tensor(PAD_VALUE))
    assert abs(PAD_VALUE - 0.467) < 1e-3
    assert not torch.allclose(melspecs[:, :, :, 197], torch.tensor(PAD_VALUE))


def test_one_second_audio_is_padded_after_98_frames() -> None:
    melspecs = preprocess(noise(1.0))
    assert melspecs.shape == (3, 1, 128, 204)
    assert torch.equal(melspecs[0], melspecs[2]), "every clip starts at 0"
    assert torch.allclose(melspecs[..., 98:], torch.tensor(PAD_VALUE))
    assert not torch.allclose(melspecs[..., 97], torch.tensor(PAD_VALUE))


def test_normalisation_values() -> None:
    waveform = noise(2.0)
    clip = waveform[:, :32000]
    expected = (kaldi_fbank(clip - clip.mean()).T - (-4.268)) / 9.138
    assert torch.allclose(preprocess(waveform)[0, 0, :, :198], expected)
    # Empty mel filters hold ln(eps) in every real frame.
    empty = empty_mel_bins(128)
    log_eps = math.log(torch.finfo(torch.float32).eps)
    assert torch.allclose(preprocess(waveform)[0, 0, empty, :198], torch.tensor((log_eps + 4.268) / 9.138))


def test_long_clip_is_truncated_to_target_length() -> None:
    melspec = clip_to_melspec(noise(3.0), target_length=204)
    full = clip_to_melspec(noise(3.0), target_length=400)
    assert melspec.shape == (1, 128, 204)
    assert torch.equal(melspec, full[..., :204])


def test_channel_zero_feeds_the_fbank_and_the_mean_spans_all_channels() -> None:
    # The clip mean is over all channels (ImageBind's waveform.mean()); a constant offset is then
    # removed again by Kaldi's per-frame DC removal, so channel 1 changes nothing measurable.
    left = noise(2.0, seed=1)
    stereo = torch.cat([left, 0.5 + noise(2.0, seed=2)])
    assert torch.allclose(preprocess(stereo), preprocess(left), atol=1e-4)


def test_options_change_the_shape() -> None:
    melspecs = preprocess(noise(4.0), clips=2, num_mel_bins=64, target_length=100)
    assert melspecs.shape == (2, 1, 64, 100)


def test_decoded_audio_is_resampled_to_16k() -> None:
    t = np.arange(2 * 44100) / 44100
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    from_44k = preprocess(DecodedAudio(samples, 44100, path=Path("tone.wav")))
    t16 = np.arange(2 * RATE) / RATE
    native = torch.from_numpy((0.3 * np.sin(2 * np.pi * 440 * t16)).astype(np.float32))[None]
    direct = preprocess(native)
    assert from_44k.shape == direct.shape == (3, 1, 128, 204)
    # Bins with real energy agree closely; the resampler's roll-off only touches the top bins.
    loud = direct[0, 0, :, :198] > 0.0
    assert (from_44k[0, 0, :, :198][loud] - direct[0, 0, :, :198][loud]).abs().max() < 0.01


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="channels, samples"):
        preprocess(torch.zeros(1, 2, 3))
