"""PandaGPT's released delta (``pytorch_model.pt``) as an anymodal model directory.

PandaGPT saves every trainable parameter of its wrapper in one ``torch.save``d dict
(specs/reference-models.md §3.6): the projection of ImageBind's pooled 1024-d vector into the LLM,
``llama_proj.weight [H, 1024]`` and ``llama_proj.bias [H]``, and the PEFT 0.3.0 LoRA tensors
``llama_model.base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}.default.weight``
(A ``[r, H]``, B ``[H, r]``; r = alpha = 32, dropout 0.1). :func:`convert` writes them as anymodal
reads a trained model, so the result loads without PandaGPT's code:

    anymodal.yaml                  PandaGPT-faithful: template "pandagpt" (BOS as an embedding,
                                   segments tokenised apart, a reply stopped on the id of "##" and
                                   trimmed of its last two ids), every input summed into one token,
                                   ImageBind's audio without its x20 scale, float16
    projectors/<modality>.safetensors   the one projection, for each modality (keys proj.*)
    adapter/                       the LoRA in PEFT's own format (adapter_config.json,
                                   adapter_model.safetensors)

The LLM (Vicuna v0) and ImageBind-huge are referenced, not copied. torch and safetensors are
imported when a delta is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.contract.errors import ModelLoadError
from anymodal.files.atomic import check_empty_directory

if TYPE_CHECKING:
    import torch

#: PandaGPT's LoRA settings (openllama_peft.yaml): scale alpha / r = 1.
LORA_ALPHA = 32
LORA_DROPOUT = 0.1
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
PROJECTION_KEYS = ("llama_proj.weight", "llama_proj.bias")
LORA_KEY = re.compile(
    r"llama_model\.base_model\.model\.model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.lora_([AB])\.default\.weight"
)

#: The modalities a converted model enables, with the ImageBind post-processing PandaGPT's own
#: ImageBind copy applies: every trunk's full post-processor, except audio's x20 scale.
#: PandaGPT's demo wires image, video, audio and thermal; depth and IMU reach the same space
#: through ImageBind (the paper's zero-shot claim). All are optional: a missing plugin is skipped.
MODALITIES: dict[str, dict[str, Any]] = {
    "image": {},
    "video": {},
    "audio": {"postprocess": "normalize"},
    "thermal": {},
    "depth": {},
    "imu": {},
}

#: PandaGPT's web demo runs the whole model (ImageBind, projection, LLM and LoRA) in float16.
DTYPE = "float16"

#: PandaGPT's web demo: sampling with top_p 0.01 (near-greedy), temperature 1, up to 256 tokens.
GENERATION = {"max_new_tokens": 256, "do_sample": True, "temperature": 1.0, "top_p": 0.01}


@dataclass
class PandaGPTDelta:
    """A checked delta: the projection (anymodal's linear-projector keys) and the LoRA tensors
    (PEFT's saved keys), with the sizes read from them."""

    path: Path
    projection: dict[str, torch.Tensor]
    lora: dict[str, torch.Tensor]
    layers: int
    hidden: int
    rank: int
    embed_dim: int
    dtype: str
    ignored: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> int:
        tensors = [*self.projection.values(), *self.lora.values()]
        return sum(t.numel() for t in tensors)

    def describe(self) -> str:
        size = {(32, 4096): "7B", (40, 5120): "13B"}.get((self.layers, self.hidden), "non-standard")
        return (
            f"PandaGPT delta {self.path}: {size} ({self.layers} layers, hidden {self.hidden}), "
            f"LoRA r={self.rank} on {'/'.join(m[0] for m in TARGET_MODULES)}, "
            f"projection {self.embed_dim} -> {self.hidden}, {self.parameters:,} parameters, {self.dtype}"
        )


def read_delta(path: str | Path) -> PandaGPTDelta:
    """Read and check ``pytorch_model.pt``; a ModelLoadError names the file and what is wrong."""
    import torch

    from anymodal.files.weights import load_torch_file

    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelLoadError(
            f"PandaGPT delta not found: {file}",
            hint="download pytorch_model.pt of openllmplayground/pandagpt_7b_max_len_1024 (or another size)",
        )
    state = load_torch_file(file, "PandaGPT delta")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{file} is not a dict of tensors, so not a PandaGPT delta")
    missing = [key for key in PROJECTION_KEYS if key not in state]
    if missing:
        raise ModelLoadError(
            f"{file} has no {' or '.join(missing)}: not a PandaGPT delta",
            hint="PandaGPT's pytorch_model.pt holds llama_proj.weight, llama_proj.bias and LoRA tensors",
        )
    weight, bias = (state[key].detach() for key in PROJECTION_KEYS)
    if weight.ndim != 2 or tuple(bias.shape) != (weight.shape[0],):
        raise ModelLoadError(
            f"{file}: llama_proj.weight {tuple(weight.shape)} and llama_proj.bias {tuple(bias.shape)} "
            "do not make a Linear projection"
        )
    hidden, embed_dim = weight.shape
    lora, ignored, layers = _lora_tensors(file, state, hidden)
    ranks = {tensor.shape[0] for key, tensor in lora.items() if key.endswith("lora_A.weight")}
    return PandaGPTDelta(
        path=file,
        projection={"proj.weight": weight, "proj.bias": bias},
        lora=lora,
        layers=layers,
        hidden=int(hidden),
        rank=int(ranks.pop()),
        embed_dim=int(embed_dim),
        dtype=str(weight.dtype).removeprefix("torch."),
        ignored=ignored,
    )


def _lora_tensors(
    file: Path, state: Mapping[str, torch.Tensor], hidden: int
) -> tuple[dict[str, torch.Tensor], list[str], int]:
    """PandaGPT's LoRA keys renamed to PEFT's saved names, checked for completeness and shapes."""
    lora: dict[str, torch.Tensor] = {}
    found: set[tuple[int, str, str]] = set()
    ignored = []
    for key, tensor in state.items():
        match = LORA_KEY.fullmatch(key)
        if match is None:
            if key not in PROJECTION_KEYS:
                ignored.append(key)
            continue
        layer, module, side = int(match[1]), match[2], match[3]
        found.add((layer, module, side))
        lora[f"base_model.model.model.layers.{layer}.self_attn.{module}_proj.lora_{side}.weight"] = (
            tensor.detach()
        )
    if not found:
        raise ModelLoadError(
            f"{file} holds no LoRA tensors (llama_model...lora_A.default.weight): not a PandaGPT delta"
        )
    layers = max(layer for layer, _, _ in found) + 1
    expected = {(layer, m[0], side) for layer in range(layers) for m in TARGET_MODULES for side in "AB"}
    if found != expected:
        absent = sorted(expected - found)[:3]
        raise ModelLoadError(
            f"{file} lacks LoRA tensors for {layers} layers, e.g. "
            + ", ".join(f"layer {layer} {m}_proj lora_{side}" for layer, m, side in absent),
            hint="the file is incomplete; download it again",
        )
    ranks = {t.shape[0] for k, t in lora.items() if k.endswith("lora_A.weight")}
    bad = [
        f"{key} {tuple(t.shape)}"
        for key, t in lora.items()
        if t.ndim != 2
        or (key.endswith("lora_A.weight") and t.shape[1] != hidden)
        or (key.endswith("lora_B.weight") and tuple(t.shape) != (hidden, min(ranks)))
    ]
    if len(ranks) != 1 or bad:
        raise ModelLoadError(
            f"{file}: LoRA tensors do not fit hidden size {hidden} with one rank ({sorted(ranks)}): "
            + ", ".join(bad[:3])
        )
    return lora, ignored, layers


def adapter_config(delta: PandaGPTDelta, base_model: str) -> dict[str, Any]:
    """PEFT's ``adapter_config.json`` for PandaGPT's LoRA (PEFT fills the fields left out)."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": delta.rank,
        "lora_alpha": LORA_ALPHA,
        "lora_dropout": LORA_DROPOUT,
        "target_modules": list(TARGET_MODULES),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }


def model_config(llm: str, imagebind: str, home: str = ".") -> dict[str, Any]:
    """A PandaGPT-faithful config: the LLM and ImageBind at the paths given, the adapter and the
    projectors under ``home`` (the converted directory; "." in its own anymodal.yaml)."""
    modalities = {
        name: {
            "optional": True,
            "encoder": {
                "name": "imagebind",
                "weights": imagebind,
                "options": {"preset": "huge", **options},
            },
            "projector": {"name": "linear", "weights": f"{home}/projectors/{name}.safetensors"},
        }
        for name, options in MODALITIES.items()
    }
    return {
        "model": {
            "llm": {"bridge": "hf", "path": llm, "adapter": f"{home}/adapter"},
            "template": "pandagpt",
            "fusion": "sum",
            # PandaGPT runs .half(): everything in float16 (model.dtype=bfloat16 when wanted).
            "dtype": DTYPE,
            "modalities": modalities,
        },
        "generation": dict(GENERATION),
    }


def convert(delta: PandaGPTDelta, output: Path, llm: str, imagebind: str) -> list[Path]:
    """Write the model directory ``output`` (absent or empty); return the files written."""
    from safetensors.torch import save_file

    check_empty_directory(output)
    (output / "projectors").mkdir(parents=True)
    (output / "adapter").mkdir()
    written = []
    projection = {key: value.contiguous() for key, value in delta.projection.items()}
    for name in MODALITIES:
        file = output / "projectors" / f"{name}.safetensors"
        save_file(projection, str(file))
        written.append(file)
    adapter = output / "adapter"
    save_file({k: v.contiguous() for k, v in delta.lora.items()}, str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps(adapter_config(delta, llm), indent=2) + "\n")
    written += [adapter / "adapter_model.safetensors", adapter / "adapter_config.json"]
    config = model_config(llm, imagebind)
    header = (
        f"# PandaGPT, converted by `anymodal convert pandagpt` from {delta.path}\n"
        f"# {delta.describe()}\n"
        "# Licences, all research / non-commercial: PandaGPT's delta CC BY-NC 4.0, ImageBind's weights\n"
        "# CC BY-NC-SA 4.0, Vicuna v0 over LLaMA-1 (Meta's research licence).\n"
    )
    (output / "anymodal.yaml").write_text(header + _yaml(config))
    written.append(output / "anymodal.yaml")
    return written


def _yaml(data: Mapping[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(dict(data)))
