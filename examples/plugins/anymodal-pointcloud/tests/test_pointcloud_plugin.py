"""What the plugin registers, and, once it is installed, what a user sees: ``anymodal plugins``
lists it and ``anymodal chat --pointcloud FILE`` answers (run as the ``anymodal`` command runs)."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
from pathlib import Path

import anymodal
import numpy as np
import pytest
from anymodal.testing import registered_modality, save_scripted_llm

import anymodal_pointcloud.loader
import anymodal_pointcloud.plugin
from anymodal_pointcloud.options import PointNetOptions

DISTRIBUTION = "anymodal-pointcloud"


def test_the_modality_and_its_encoder() -> None:
    spec = registered_modality(anymodal_pointcloud.plugin, "pointcloud")
    assert (spec.placeholder, spec.flag, spec.file_kinds) == (
        "<pointcloud>",
        "--pointcloud",
        (".npy",),
    )
    assert (spec.default_encoder, spec.default_projector) == ("pointnet", "linear")
    encoders: list[anymodal.EncoderSpec] = []
    anymodal_pointcloud.plugin.register_encoders(encoders.append)
    (encoder,) = encoders
    assert (encoder.name, encoder.options, encoder.modalities) == (
        "pointnet",
        PointNetOptions,
        ("pointcloud",),
    )


def test_the_hook_takes_the_preprocessing_options_of_the_loader() -> None:
    # anymodal checks config keys against the hook's signature; the loader's must agree with it.
    hook = inspect.signature(anymodal_pointcloud.plugin.preprocess).parameters
    real = inspect.signature(anymodal_pointcloud.loader.preprocess).parameters
    assert [(p.name, p.default) for p in list(hook.values())[1:]] == [
        (p.name, p.default) for p in list(real.values())[1:]
    ]


def anymodal_command(*args: str) -> subprocess.CompletedProcess[str]:
    """``anymodal ARGS`` in a fresh interpreter, which finds plugins through their entry points."""
    try:
        importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{DISTRIBUTION} is not installed: pip install -e .")
    command = [sys.executable, "-m", "anymodal", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)


def test_anymodal_plugins_lists_it() -> None:
    result = anymodal_command("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (line,) = [line for line in lines if line.startswith(f"{DISTRIBUTION} ")]
    assert line.split() == [DISTRIBUTION, "0.1.0", "[pointcloud]", "ok"]
    listed = lines[lines.index(line) + 1 : lines.index(line) + 3]
    assert [entry.split() for entry in listed] == [
        ["modalities:", "pointcloud"],
        ["encoders:", "pointnet"],
    ]


def test_anymodal_chat_answers_about_a_cloud(tmp_path: Path) -> None:
    save_scripted_llm(tmp_path / "llm", "A car on the left.")
    (tmp_path / "anymodal.yaml").write_text(
        "model:\n  llm: {path: ./llm}\n  template: plain\n  device: cpu\n  dtype: float32\n"
        "  modalities:\n"
        "    pointcloud: {encoder: {options: {width: 32, tokens: 4}}, preprocess: {num_points: 64}}\n"
        "generation: {max_new_tokens: 12}\n"
    )
    scan = tmp_path / "scan.npy"
    np.save(scan, np.random.default_rng(0).standard_normal((500, 3)).astype(np.float32))
    question = "What is in the scan?"
    result = anymodal_command("chat", "--model", str(tmp_path), "--pointcloud", str(scan), question)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "A car on the left."
    few = tmp_path / "few.npy"
    np.save(few, np.zeros((3, 3), dtype=np.float32))
    failed = anymodal_command("chat", "--model", str(tmp_path), "--pointcloud", str(few), question)
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        f"error: pointcloud file holds 3 points, at least 16 are needed: {few}"
    )
