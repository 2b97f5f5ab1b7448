"""The demo recipe is seeded end to end: run twice, it writes the same model, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal.demo.recipe import Recipe, run


@pytest.mark.slow
def test_the_quick_recipe_writes_the_same_model_twice(tmp_path: Path) -> None:
    models = []
    for name in ("first", "second"):
        summary = run(tmp_path / name, None, Recipe().quick(), log=lambda line: None)
        singles = {"image", "video", "audio", "depth", "thermal", "imu"}
        several = {"image+image", "image+image+image", "video+audio", "depth+thermal"}
        assert set(summary["eval"]["by_modality"]) == singles | several
        models.append(tmp_path / name / "model")
    files = sorted(path.relative_to(models[0]) for path in models[0].rglob("*") if path.is_file())
    assert Path("imagebind.safetensors") in files and Path("llm/model.safetensors") in files
    assert files == sorted(path.relative_to(models[1]) for path in models[1].rglob("*") if path.is_file())
    different = [str(f) for f in files if (models[0] / f).read_bytes() != (models[1] / f).read_bytes()]
    assert different == []
