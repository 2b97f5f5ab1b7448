"""The windowed-sinc resampler keeps tones in the passband and removes those above the new Nyquist."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from anymodal_audio.resample import resample, resample_range, resampled_length


def test_1khz_tone_keeps_frequency_and_amplitude(
    tone: Callable[..., np.ndarray], peak_frequency: Callable[[np.ndarray, int], float]
) -> None:
    signal = torch.from_numpy(tone(2.0, 44100, freq=1000.0, amplitude=0.5))[None]
    out = resample(signal, 44100, 16000)
    assert out.shape == (1, 32000)
    middle = out[0, 8000:24000].numpy()  # away from the zero-padded edges
    assert peak_frequency(middle, 16000) == 1000.0
    amplitude = np.sqrt(2.0 * np.mean(middle**2))
    assert abs(amplitude - 0.5) / 0.5 < 0.01


def test_tone_above_the_new_nyquist_is_removed(tone: Callable[..., np.ndarray]) -> None:
    # 12 kHz would alias to 4 kHz at 16 kHz; the filter must stop it (linear interpolation would not).
    signal = torch.from_numpy(tone(1.0, 44100, freq=12000.0, amplitude=0.5))[None]
    out = resample(signal, 44100, 16000)[0, 2000:-2000].numpy()
    assert np.sqrt(2.0 * np.mean(out**2)) < 0.5 * 1e-3  # below -60 dB


def test_upsampling_and_channels(
    tone: Callable[..., np.ndarray], peak_frequency: Callable[[np.ndarray, int], float]
) -> None:
    signal = torch.from_numpy(np.stack([tone(1.0, 8000, freq=1000.0), tone(1.0, 8000, freq=500.0)]))
    out = resample(signal, 8000, 16000)
    assert out.shape == (2, 16000)
    assert peak_frequency(out[0, 2000:-2000].numpy(), 16000) == 1000.0
    assert peak_frequency(out[1, 2000:-2000].numpy(), 16000) == 500.0
    # Upsampling by 2 keeps the original samples (even outputs sit on input instants) to filter accuracy.
    assert torch.allclose(out[:, 200:-200:2], signal[:, 100:-100], atol=2e-3)


def test_same_rate_is_a_no_op() -> None:
    signal = torch.randn(2, 1000)
    assert torch.equal(resample(signal, 16000, 16000), signal)


def recording(signal: torch.Tensor, reads: list[tuple[int, int]]) -> Callable[[int, int], torch.Tensor]:
    """A reader of ``signal`` that notes each range it is asked for."""

    def read(start: int, stop: int) -> torch.Tensor:
        reads.append((start, stop))
        return signal[:, start:stop]

    return read


def test_a_range_of_the_output_is_bit_exact_and_reads_only_its_input() -> None:
    generator = torch.Generator().manual_seed(0)
    for rate, channels in [(44100, 2), (22050, 1), (8000, 1), (44056, 1)]:
        signal = 0.1 * torch.randn(channels, 3 * rate + 7, generator=generator)
        whole = resample(signal, rate, 16000)
        total = resampled_length(signal.shape[1], rate, 16000)
        assert whole.shape == (channels, total)
        for start, stop in [(0, total), (5, 32005), (total // 2, total // 2 + 1), (total - 300, total + 99)]:
            reads: list[tuple[int, int]] = []
            part = resample_range(
                recording(signal, reads), signal.shape[1], channels, rate, 16000, start, stop
            )
            assert torch.equal(part, whole[:, start:stop]), (rate, start, stop)
            ((low, high),) = reads
            # One read, of the input under the range's chunks and the filter's reach around them.
            assert high - low <= (min(stop, total) - start) * rate / 16000 + 2.5 * rate, (rate, start, stop)


def test_an_odd_rate_resamples_as_well_as_a_common_one(
    tone: Callable[..., np.ndarray], peak_frequency: Callable[[np.ndarray, int], float]
) -> None:
    # 44056 / 16000 reduces to 5507 / 2000: a dense polyphase kernel would hold 11 M taps.
    signal = torch.from_numpy(tone(2.0, 44056, freq=1000.0, amplitude=0.5))[None]
    out = resample(signal, 44056, 16000)[0, 4000:-4000].numpy()
    assert peak_frequency(out, 16000) == 1000.0
    assert abs(np.sqrt(2.0 * np.mean(out**2)) - 0.5) / 0.5 < 0.01
