"""benchmarks/gpu.py runs end to end and writes every measurement: tiny models on the CPU always,
the real shapes (ImageBind-huge, a 7B-shaped Llama) briefly where there is a CUDA GPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
#: The figures each measurement must report, all positive.
FIGURES = {
    "vision_encode": ("batch", "images_per_s", "ms_per_batch"),
    "decode_one": ("rows", "prompt", "new_tokens", "tokens_per_s", "ms_per_token", "first_token_ms"),
    "decode_batch": ("rows", "prompt", "new_tokens", "tokens_per_s", "tokens_per_s_per_row", "prefill_ms"),
    "first_token": ("prompt", "positions", "ms", "image_encode_ms", "audio_encode_ms", "prefill_ms"),
}


def run_benchmark(tmp_path: Path, *args: str, timeout: float) -> dict[str, Any]:
    out = tmp_path / "results.json"
    command = [sys.executable, str(SCRIPT), *args, "--repeats", "1", "--json", str(out)]
    # --small: one intra-op thread, as the tiny models' ops are too small to share; on a busy CPU,
    # threads waiting for each other made the run three times slower.
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if "--small" in args else None
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr
    assert "| measurement |" in result.stdout
    return json.loads(out.read_text())


def check_measurements(results: dict[str, Any], *, peak: bool) -> None:
    measurements = results["measurements"]
    assert set(measurements) == set(FIGURES)
    assert [row["batch"] for row in measurements["vision_encode"]] == [1, 8, 32]
    assert measurements["decode_batch"]["rows"] == 16
    for name, keys in FIGURES.items():
        rows = measurements[name] if isinstance(measurements[name], list) else [measurements[name]]
        for row in rows:
            for key in keys:
                assert row[key] > 0, (name, key, row)
            assert (row.get("peak_gib", 0) > 0) is peak, (name, row)
    assert results["repeats"] == 1 and results["torch"] == torch.__version__


def test_small_run_on_the_cpu_reports_every_measurement(tmp_path: Path) -> None:
    results = run_benchmark(tmp_path, "--small", "--device", "cpu", timeout=120)
    check_measurements(results, peak=False)
    assert results["small"] is True and results["device_type"] == "cpu"
    assert results["dtype"] == "bfloat16"


def test_real_shapes_need_a_gpu_or_small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as when run as a script: it imports pandagpt_7b
    spec = importlib.util.spec_from_file_location("benchmarks_gpu", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match=r"need a CUDA GPU.*pass --small"):
        module.main(["--device", "cpu"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_shapes_on_a_gpu(tmp_path: Path) -> None:
    results = run_benchmark(tmp_path, "--device", "cuda", "--new-tokens", "16", timeout=900)
    check_measurements(results, peak=True)
    assert results["small"] is False and results["dtype"] == "bfloat16"
    assert results["device"] == torch.cuda.get_device_name()
    assert 6000 < results["parameters_m"]["llm"] < 7000  # 6.7B: the 7B shape, not a toy
    assert 600 < results["parameters_m"]["vision"] < 700  # ImageBind-huge's vision trunk
