"""Reading and preprocessing ECG recordings: ``[leads, samples]`` arrays in ``.npy`` or ``.csv``
(or ``.tsv``; one column per lead with or without a header row, or one row per lead), read by
:func:`anymodal.read_array`, which turns a ``[samples, leads]`` table the right way and refuses
pickles, empty tables, ragged rows, non-numeric cells and NaN or infinite values, naming the file.

Every problem with a file is an :class:`anymodal.InputError` that names it and says what to do.

Preprocessing, deterministic: the first ``samples`` samples of every lead (zero-padded when the
recording is shorter), each lead's median subtracted (the baseline), then all leads divided by
the recording's one standard deviation, so that the leads keep their relative amplitudes and a
recording in millivolts reads the same as one in microvolts.
"""

from __future__ import annotations

from pathlib import Path

import anymodal
import numpy as np
import torch

from anymodal_ecg.options import DEFAULT_SAMPLES, LEADS, MAX_SAMPLES, MIN_SAMPLES

MODALITY = "ecg"


def load(path: Path) -> np.ndarray:
    """A float32 array ``[LEADS, samples]`` with ``MIN_SAMPLES <= samples <= MAX_SAMPLES`` that is
    not flat; :class:`anymodal.InputError` naming the file for anything else."""
    array = anymodal.read_array(
        path, modality=MODALITY, channels=LEADS, max_elements=LEADS * MAX_SAMPLES
    )
    samples = array.shape[1]
    if samples < MIN_SAMPLES:
        raise anymodal.InputError(
            f"ecg recording holds {samples} samples per lead, at least {MIN_SAMPLES} (one second "
            f"at 250 Hz) are needed: {path}",
            hint="pass a whole recording, one row per sample and one column per lead",
        )
    if not (np.ptp(array, axis=1) > 0).any():
        raise anymodal.InputError(
            f"ecg recording is flat, every lead holds one value: {path}",
            hint="check that the leads were connected and the recording exported",
        )
    return array


def preprocess(array: np.ndarray, samples: int = DEFAULT_SAMPLES) -> torch.Tensor:
    """``[LEADS, n]`` -> float32 ``[LEADS, samples]``, baseline-removed and scaled (see the module
    docstring)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < MIN_SAMPLES:
        raise anymodal.UsageError(
            f"ecg preprocess option samples must be an integer of at least {MIN_SAMPLES}, "
            f"got {samples!r}",
            hint=f"set modalities.ecg.preprocess.samples, e.g. {DEFAULT_SAMPLES}",
        )
    if array.ndim != 2 or array.shape[0] != LEADS:
        raise ValueError(f"expected an array of shape [{LEADS}, n], got {list(array.shape)}")
    signal = np.asarray(array[:, :samples], dtype=np.float64)
    signal = signal - np.median(signal, axis=1, keepdims=True)
    scale = float(signal.std())
    if scale > 0:
        signal = signal / scale
    padded = np.zeros((LEADS, samples), dtype=np.float32)
    padded[:, : signal.shape[1]] = signal
    return torch.from_numpy(padded)
