"""The demo recipe is seeded end to end: run twice, it writes the same model, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anymodal.demo.recipe import Recipe, run


@pytest.mark.slow
def test_the_quick_recipe_writes_the_same_model_twice(tmp_path: Path) -> None:
    models = []
    for name in ("first", "second"):
        summary = run(tmp_path / name, None, Recipe().quick(), log=lambda line: None)
        assert set(summary["eval"]["by_modality"]) == {"image", "video", "audio", "depth", "thermal", "imu"}
        models.append(tmp_path / name / "model")
    files = sorted(path.relative_to(models[0]) for path in models[0].rglob("*") if path.is_file())
    assert Path("imagebind.safetensors") in files and Path("llm/model.safetensors") in files
    assert files == sorted(path.relative_to(models[1]) for path in models[1].rglob("*") if path.is_file())
    different = [str(f) for f in files if (models[0] / f).read_bytes() != (models[1] / f).read_bytes()]
    assert different == []


SHIPPED_ENCODER = Path(__file__).parents[2] / "anymodal" / "models" / "demo" / "imagebind.safetensors"


@pytest.mark.slow
def test_a_given_encoder_is_used_as_it_is_in_place_of_pre_training(tmp_path: Path) -> None:
    summary = run(tmp_path, None, Recipe().several_inputs().quick(), lambda line: None, SHIPPED_ENCODER)
    several = {"image+image", "image+image+image", "video+audio", "depth+thermal"}
    assert several < set(summary["eval"]["by_modality"])
    assert summary["encoder_accuracy"] is None and "encoder-image" not in {p.name for p in tmp_path.iterdir()}
    assert (tmp_path / "model" / "imagebind.safetensors").read_bytes() == SHIPPED_ENCODER.read_bytes()


def test_an_encoder_of_another_kind_is_refused_before_any_work(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from anymodal.contract.errors import ModelLoadError

    save_file(
        {"modality_trunks.vision.blocks.0.attn.in_proj_weight": torch.zeros(3, 3)}, tmp_path / "w.safetensors"
    )
    with pytest.raises(ModelLoadError, match=r"w\.safetensors does not fit ImageBind"):
        run(
            tmp_path / "run",
            None,
            Recipe().quick(),
            log=lambda line: None,
            encoder=tmp_path / "w.safetensors",
        )
    assert not (tmp_path / "run" / "world").exists()


def test_the_command_says_what_is_wrong_with_the_encoder_in_one_line(tmp_path: Path, capsys) -> None:
    from anymodal.demo.recipe import main

    (tmp_path / "bad.safetensors").write_text("not weights")
    assert main([str(tmp_path / "run"), "--encoder", str(tmp_path / "bad.safetensors")]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert (
        len(error) == 1
        and error[0].startswith("error: cannot read weights file")
        and "bad.safetensors" in error[0]
    )
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path / "run"), "--encoder", str(tmp_path / "missing.safetensors")])
    assert exited.value.code == 2 and "--encoder: no such file" in capsys.readouterr().err
