"""The anymodal entry point of anymodal-ecg: registers the ``ecg`` modality and its ``ecg-cnn``
encoder.

anymodal imports this module to list plugins and to build ``anymodal chat --help``, so it imports
nothing heavy: numpy loads with ``anymodal_ecg.loader`` when a file is read, torch with
``anymodal_ecg.encoder`` when the encoder is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anymodal

from anymodal_ecg.options import DEFAULT_SAMPLES, LEADS, EcgNetOptions

#: The plugin contract this plugin was written for; anymodal refuses it if it speaks another one.
ANYMODAL_CONTRACT = 1

FILE_KINDS = ("npy", "csv", "tsv")

DESCRIPTION = f"ECG-style recordings, [leads, samples] ({LEADS} leads) as .npy or .csv"


def load(path: Path) -> Any:
    """Decode one file to float32 ``[LEADS, samples]``; see :func:`anymodal_ecg.loader.load`."""
    from anymodal_ecg.loader import load as load_file

    return load_file(path)


def preprocess(array: Any, samples: int = DEFAULT_SAMPLES) -> Any:
    """``[LEADS, n]`` -> float32 ``[LEADS, samples]``; see :func:`anymodal_ecg.loader.preprocess`."""
    from anymodal_ecg.loader import preprocess as to_tensor

    return to_tensor(array, samples=samples)


def build_encoder(modality: str, options: EcgNetOptions | None) -> Any:
    """The ``ecg-cnn`` encoder, random (seeded) until weights are given
    (``modalities.ecg.encoder.weights``)."""
    from anymodal_ecg.encoder import EcgNet

    return EcgNet(options or EcgNetOptions())


def emits(options: Mapping[str, Any]) -> anymodal.TensorLayout:
    """What :func:`preprocess` returns for its options: float32 ``[LEADS, samples]``."""
    return anymodal.TensorLayout((LEADS, options["samples"]), names=("leads", "samples"))


def takes(modality: str, options: EcgNetOptions | None) -> anymodal.TensorLayout:
    """What the ``ecg-cnn`` encoder reads: its ``leads`` (LEADS by default), any length."""
    leads = options.leads if options else LEADS
    return anymodal.TensorLayout((leads, None), names=("leads", "samples"))


@anymodal.hookimpl
def register_modalities(register: Callable[..., None]) -> None:
    register(
        anymodal.ModalitySpec(
            name="ecg",
            loader=load,
            preprocess=preprocess,
            file_kinds=FILE_KINDS,
            default_encoder="ecg-cnn",
            default_projector="mlp",
            placeholder="<ecg>",
            emits=emits,
            description=DESCRIPTION,
        )
    )


@anymodal.hookimpl
def register_encoders(register: Callable[..., None]) -> None:
    register(
        anymodal.EncoderSpec(
            name="ecg-cnn",
            build=build_encoder,
            options=EcgNetOptions,
            modalities=("ecg",),
            takes=takes,
            description="1-D convolutional net over the leads: tokens pooled over time, "
            "mean+max pooled vector",
        )
    )
