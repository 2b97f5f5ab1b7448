"""What the loader, the preprocessing and the encoder share: the lead count, the file limits, the
default input length, and the encoder's options (``modalities.ecg.encoder.options``).

Kept apart from the loader and the encoder so that registering the plugin imports neither numpy
nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import anymodal

#: Leads per recording. The one constant both sides of the tensor between the preprocessing and
#: the encoder are declared from (``emits`` and ``takes`` in plugin.py): the loader refuses files
#: with another count, and the encoder's first convolution reads this many.
LEADS = 3

#: The sample rate the preprocessing assumes, in Hz (the synthetic recordings' rate).
SAMPLE_RATE = 250

#: Samples per input after preprocessing, by default (10 s at SAMPLE_RATE);
#: ``modalities.ecg.preprocess.samples`` changes it.
DEFAULT_SAMPLES = 2500

#: Fewer samples than this (one second) hold no whole heartbeat.
MIN_SAMPLES = SAMPLE_RATE

#: More samples per lead than this (an hour at 1 kHz) are refused before the data is read.
MAX_SAMPLES = 3_600_000


@dataclass(frozen=True)
class EcgNetOptions:
    """Options of the ``ecg-cnn`` encoder; anymodal checks the config's keys and types against these
    fields, and the values are checked here when the options are made."""

    #: Leads the first convolution reads; must equal what the preprocessing emits (LEADS).
    leads: int = LEADS
    #: Channels of the last convolution, and so the width of every token (``feature_dim``).
    width: int = 64
    #: Tokens per input: the last convolution's output, average-pooled over time into this many.
    tokens: int = 8
    #: Width of the pooled vector (``pooled_dim``).
    embed_dim: int = 64
    #: Seed of the random initialisation (used when no weights file is given).
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("leads", "width", "tokens", "embed_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise anymodal.UsageError(
                    f"ecg-cnn encoder option {name} must be a positive integer, got {value!r}",
                    hint=f"set modalities.ecg.encoder.options.{name}",
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise anymodal.UsageError(
                f"ecg-cnn encoder option seed must be an integer, got {self.seed!r}",
                hint="set modalities.ecg.encoder.options.seed",
            )
