"""The ECG example plugin's README, run as written with quick settings: the synthetic world and the
pre-trained encoder (``python -m anymodal_ecg.synthetic``), the projector and LoRA instruction-tuned
on the built-in demo model's LLM (``anymodal train`` with the example's ``configs/train-ecg.yaml``),
then ``anymodal eval`` on held-out recordings and ``anymodal chat`` about one of them; first, the
README's one-command try of the plugin untrained, which must say that its answers are noise.

Slow (a few minutes on 2 CPU cores) and needs the example plugin installed
(``pip install examples/plugins/anymodal-ecg``); ``.ci/run`` installs it and runs this with
``ANYMODAL_REQUIRE_ECG=1``, which turns the skip into a failure.

Chance is one rhythm in four (0.25). These settings (the generator's and the config's defaults:
400 recordings, 300 encoder steps, 300 training steps) scored 0.95 (95 of 100 held-out
recordings) on a 2-core CPU; the floor is far above chance and below that.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugins" / "anymodal-ecg"
CONFIG = PLUGIN / "configs" / "train-ecg.yaml"
ACCURACY_FLOOR = 0.7

pytestmark = pytest.mark.slow


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def untrained_try(cwd: Path) -> subprocess.CompletedProcess[str]:
    """The README's one-command try of the plugin before any training, run as written there: the
    demo model with the modality added, its encoder and projector random."""
    readme = (PLUGIN / "README.md").read_text(encoding="utf-8")
    (line,) = [line for line in readme.splitlines() if line.startswith("anymodal chat --set ")]
    args = shlex.split(line)
    assert args[0] == "anymodal"
    return subprocess.run(
        [sys.executable, "-m", "anymodal", *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def installed() -> None:
    if importlib.util.find_spec("anymodal_ecg") is None:
        if os.environ.get("ANYMODAL_REQUIRE_ECG"):
            pytest.fail("the example ECG plugin is not installed (ANYMODAL_REQUIRE_ECG=1)")
        pytest.skip("the example ECG plugin is not installed")


def test_the_demo_llm_taught_by_the_readme_commands_reads_held_out_rhythms(
    installed: None, tmp_path: Path
) -> None:
    anymodal = (sys.executable, "-m", "anymodal")
    run(sys.executable, "-m", "anymodal_ecg.synthetic", "ecg-data", cwd=tmp_path)
    untrained = untrained_try(tmp_path)
    assert untrained.returncode == 0, untrained.stderr
    assert "untrained, so its answers are noise until trained: ecg encoder (ecg-cnn), ecg projector" in (
        untrained.stderr
    )
    run(
        *anymodal,
        "train",
        str(CONFIG),
        "train.data.train=ecg-data/train/conversations.jsonl",
        "model.modalities.ecg.encoder.weights=ecg-data/ecg-cnn.safetensors",
        "train.output_dir=runs/ecg",
        "train.feature_cache=runs/ecg-features",
        cwd=tmp_path,
    )
    run(*anymodal, "eval", "runs/ecg", "--data", "ecg-data/held-out", "--output", "eval.json", cwd=tmp_path)
    results = json.loads((tmp_path / "eval.json").read_text())
    accuracy = results["by_modality"]["ecg"]["accuracy"]
    print(results["overall"], results["by_kind"])
    assert results["by_modality"]["ecg"]["items"] == 100
    assert accuracy >= ACCURACY_FLOOR, results["overall"]
    reply = run(
        *anymodal,
        "chat",
        "--model",
        "runs/ecg",
        "--ecg",
        "ecg-data/held-out/0001.npy",
        "What is the rhythm?",
        cwd=tmp_path,
    )
    assert "rhythm" in reply.lower()
