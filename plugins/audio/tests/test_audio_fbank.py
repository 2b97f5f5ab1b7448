"""The pure-torch Kaldi fbank agrees with kaldi-native-fbank configured as ImageBind's torchaudio call."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from anymodal_audio.fbank import LOG_FLOOR, empty_mel_bins, kaldi_fbank, kaldi_mel_banks

knf = pytest.importorskip("kaldi_native_fbank", reason="kaldi-native-fbank (the test extra) is the reference")

RATE = 16000


def reference_options(num_mel_bins: int) -> object:
    """kaldi-native-fbank options spelling out what ImageBind passes to torchaudio, plus its defaults."""
    options = knf.FbankOptions()
    frame = options.frame_opts
    frame.samp_freq = RATE
    frame.frame_length_ms, frame.frame_shift_ms = 25.0, 10.0
    frame.dither = 0.0
    frame.window_type = "hanning"
    frame.remove_dc_offset = True
    frame.preemph_coeff = 0.97
    frame.round_to_power_of_two = True
    frame.snip_edges = True
    mel = options.mel_opts
    mel.num_bins = num_mel_bins
    mel.low_freq, mel.high_freq = 20.0, 0.0
    mel.is_librosa = False  # Kaldi triangles on 1127·ln(1 + f/700), not librosa's Slaney filters
    options.use_energy = False
    options.htk_compat = True
    options.use_log_fbank = True
    options.use_power = True
    return options


def reference_fbank(signal: np.ndarray, num_mel_bins: int) -> np.ndarray:
    """``[frames, num_mel_bins]`` from kaldi-native-fbank."""
    fbank = knf.OnlineFbank(reference_options(num_mel_bins))
    fbank.accept_waveform(RATE, signal.tolist())
    fbank.input_finished()
    return np.stack([np.asarray(fbank.get_frame(i)) for i in range(fbank.num_frames_ready)])


def write_and_read(path: Path, signal: np.ndarray) -> np.ndarray:
    """Round-trip through a 16-bit PCM wav, as real input would arrive."""
    soundfile.write(path, signal, RATE, subtype="PCM_16")
    samples, rate = soundfile.read(path, dtype="float32")
    assert rate == RATE
    return samples


@pytest.fixture
def tone_and_noise(tmp_path: Path) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(2 * RATE) / RATE
    signal = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    return write_and_read(tmp_path / "tone.wav", signal)


@pytest.fixture
def chirp(tmp_path: Path) -> np.ndarray:
    t = np.arange(int(1.5 * RATE)) / RATE
    # 50 Hz → 7.5 kHz linear sweep: every mel filter sees the tone at some point. The noise keeps
    # the narrow, pre-emphasis-damped lowest filters well above float32's rounding floor; on a clean
    # sweep their energies are ~1e-7 and any two float32 implementations (this one and
    # kaldi-native-fbank alike) differ from a float64 computation there by up to ~1e-2 in log.
    rng = np.random.default_rng(0)
    signal = 0.4 * np.sin(2 * np.pi * (50 * t + (7450 / (2 * 1.5)) * t**2)) + 0.05 * rng.standard_normal(
        t.size
    )
    return write_and_read(tmp_path / "chirp.wav", signal)


@pytest.mark.parametrize("num_mel_bins", [64, 80])
@pytest.mark.parametrize("signal_name", ["tone_and_noise", "chirp"])
def test_fbank_matches_kaldi_native_fbank(
    signal_name: str, num_mel_bins: int, request: pytest.FixtureRequest
) -> None:
    signal = request.getfixturevalue(signal_name)
    expected = reference_fbank(signal, num_mel_bins)
    ours = kaldi_fbank(torch.from_numpy(signal), num_mel_bins=num_mel_bins).numpy()
    assert ours.shape == expected.shape == (1 + (signal.size - 400) // 160, num_mel_bins)
    difference = np.abs(ours - expected)
    assert np.median(difference) < 1e-5
    assert difference.max() < 2e-3


def test_kaldi_native_fbank_refuses_128_bins_at_16k() -> None:
    # Why the 128-bin check below is against the formula, not the reference library.
    with pytest.raises(Exception, match="num_mel_bins"):
        reference_fbank(np.zeros(1000, dtype=np.float32), 128)


def test_empty_bins_at_128_hold_log_eps(tone_and_noise: np.ndarray) -> None:
    banks = kaldi_mel_banks(128)
    empty = empty_mel_bins(128)
    assert empty == [int(i) for i in torch.nonzero(banks.sum(dim=1) == 0).flatten()]
    assert empty, "at 16 kHz with a 512-point FFT some of the 128 Kaldi filters fall between FFT bins"
    assert max(empty) < 10, "only the narrow low-frequency filters can be empty"
    melspec = kaldi_fbank(torch.from_numpy(tone_and_noise), num_mel_bins=128)
    assert melspec.shape == (198, 128)
    log_eps = math.log(torch.finfo(torch.float32).eps)
    assert torch.all(melspec[:, empty] == torch.tensor(log_eps, dtype=torch.float32))
    others = [i for i in range(128) if i not in empty]
    # A filter that touches one FFT bin with a tiny weight (bin 5 here, 0.05) may dip to the floor
    # in a quiet frame, so non-empty filters are only required to be above it almost always.
    assert torch.all((melspec[:, others] > log_eps).float().mean(dim=0) > 0.9)


def test_mel_banks_layout() -> None:
    banks = kaldi_mel_banks(80)
    assert banks.shape == (80, 257)
    assert torch.all(banks[:, -1] == 0), "Kaldi gives the Nyquist bin zero weight"
    assert torch.all(banks[:, 0] == 0), "0 Hz lies below low_freq = 20 Hz"
    assert float(banks.max()) <= 1.0
    peaks = banks.argmax(dim=1)
    assert torch.all(peaks[1:] >= peaks[:-1]), "filters rise with frequency"


def test_frame_count_and_short_input() -> None:
    assert kaldi_fbank(torch.zeros(32000)).shape == (198, 128)
    assert kaldi_fbank(torch.zeros(2, 400)).shape == (1, 128)
    assert kaldi_fbank(torch.zeros(399)).shape == (0, 128)
    # Silence floors every bin at ln(eps), as torchaudio's clamp does.
    assert torch.all(kaldi_fbank(torch.zeros(800)) == torch.tensor(LOG_FLOOR).log())


def test_only_channel_zero_is_used(tone_and_noise: np.ndarray) -> None:
    mono = torch.from_numpy(tone_and_noise)
    stereo = torch.stack([mono, torch.randn_like(mono)])
    assert torch.equal(kaldi_fbank(stereo), kaldi_fbank(mono))
