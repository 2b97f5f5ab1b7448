"""The audio modality is found through its entry point."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import anymodal
from anymodal.contract.registry import load_registry


def test_entry_point_registers_the_audio_modality() -> None:
    try:
        importlib.metadata.distribution("anymodal-audio")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("anymodal-audio is not installed: pip install -e plugins/audio")
    registry = load_registry()
    owner = registry.owners[("modality", "audio")]
    assert (owner.name, owner.distribution, owner.status) == ("audio", "anymodal-audio", "ok")
    spec = registry.modalities["audio"]
    assert spec.file_kinds == (".wav", ".flac", ".ogg", ".mp3", ".mp4", ".mkv", ".webm", ".mov", ".avi")
    assert (spec.default_encoder, spec.default_projector, spec.placeholder) == (
        "imagebind",
        "linear",
        "<audio>",
    )


def test_spec_loads_and_preprocesses_a_wav(tmp_path: Path) -> None:
    from anymodal_audio import plugin

    registered: list[anymodal.ModalitySpec] = []
    plugin.register_modalities(registered.append)
    (spec,) = registered
    path = tmp_path / "tone.wav"
    soundfile.write(path, np.sin(np.arange(48000) * 0.1).astype(np.float32) * 0.3, 16000)
    file = anymodal.check_input_file(path, spec.file_kinds, modality=spec.name)
    melspecs = spec.preprocess(spec.loader(file), clips=3)
    assert melspecs.shape == (3, 1, 128, 204) and melspecs.dtype == torch.float32
