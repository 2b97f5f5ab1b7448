"""``anymodal export``: a model as plain files, the LoRA merged into the LLM.

The result holds ``llm/`` (a model directory of the bridge's format, e.g. a transformers one any
Hugging Face tool loads, with no adapter left), ``projectors/<modality>.safetensors`` and an
``anymodal.yaml`` pointing at them. Encoder weights are referenced by absolute path, or copied
into ``encoders/`` with ``copy_encoders``. Everything is written into a hidden staging directory
and renamed into place when complete, so an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from anymodal.config import LoadedConfig
from anymodal.config.model_files import check_model_files
from anymodal.contract.registry import Registry
from anymodal.files.atomic import check_empty_directory

DTYPES = ("float32", "bfloat16", "float16")


def export_model(
    loaded: LoadedConfig,
    registry: Registry,
    output: Path,
    *,
    dtype: str = "auto",
    copy_encoders: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Export the model ``loaded`` describes into ``output`` (absent or empty); return it."""
    from anymodal.runtime.model import llm_settings

    check_empty_directory(output)
    model = loaded.config.model
    check_model_files(model)
    settings = llm_settings(model)
    chosen = checkpoint_dtype(settings.path) if dtype == "auto" else dtype
    staging = output.with_name(f".{output.name}.exporting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        adapter = f" with the adapter {settings.adapter}" if settings.adapter else ""
        log(f"loading the LLM {settings.path} in {chosen}{adapter}")
        bridge = registry.get("bridge", model.llm.bridge).load(settings, "cpu", chosen)
        bridge.export(staging / "llm")
        data = _exported_config(loaded, staging, copy_encoders)
        header = f"# anymodal model exported from {loaded.source} (LoRA merged into llm/)\n"
        (staging / "anymodal.yaml").write_text(header + OmegaConf.to_yaml(OmegaConf.create(data)))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if output.exists():
        output.rmdir()  # empty, checked above
    staging.rename(output)
    return output


def checkpoint_dtype(path: str) -> str:
    """The dtype a local transformers checkpoint declares in config.json, else float32."""
    config = Path(path).expanduser() / "config.json"
    if config.is_file():
        declared = json.loads(config.read_text())
        value = declared.get("torch_dtype") or declared.get("dtype")
        if value in DTYPES:
            return str(value)
    return "float32"


def _exported_config(loaded: LoadedConfig, directory: Path, copy_encoders: bool) -> dict[str, Any]:
    """The resolved config pointing at the exported files; projectors (and encoders) copied."""
    data = loaded.to_dict()
    data.pop("train", None)
    data["model"]["llm"].update(path="./llm", adapter=None)
    copied: dict[str, str] = {}
    for name, block in data["model"]["modalities"].items():
        source = block["projector"].get("weights")
        if source:
            target = directory / "projectors" / f"{name}{Path(source).suffix}"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, target)
            block["projector"]["weights"] = f"./projectors/{target.name}"
        weights = block["encoder"].get("weights")
        if weights and copy_encoders:
            if weights not in copied:  # one file shared by several modalities is copied once
                target = directory / "encoders" / Path(weights).name
                target.parent.mkdir(exist_ok=True)
                shutil.copyfile(weights, target)
                copied[weights] = f"./encoders/{target.name}"
            block["encoder"]["weights"] = copied[weights]
    return data
