"""``anymodal doctor``: what this environment has, and what a model would need of it.

The environment: Python, torch with its CUDA devices and their memory, the libraries anymodal
uses (installed version or absent), anymodal's directories, and every plugin's status. For a
model: the files it names that are missing, the parts that no weights file trains, and the memory
its weights take in the dtype it would run in, part by part. Parameter counts come from building
each part on torch's meta device (no memory, no weights read): the LLM from its config.json,
each encoder from its options.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from anymodal import __version__
from anymodal.config import LoadedConfig
from anymodal.config.sources import cache_dir, weights_dir
from anymodal.contract.registry import Registry

#: Distributions anymodal and its first-party plugins use, in the order they are reported.
LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "safetensors",
    "tokenizers",
    "huggingface-hub",
    "bitsandbytes",
    "decord",
    "av",
    "soundfile",
    "openai-whisper",
    "pluggy",
    "omegaconf",
)
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GIB = 1024**3


def environment_lines(registry: Registry) -> Iterator[str]:
    """The environment report, line by line."""
    import torch

    yield f"anymodal {__version__}, Python {platform.python_version()} on {platform.platform(terse=True)}"
    yield f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            name = torch.cuda.get_device_name(index)
            bf16 = "bf16" if torch.cuda.is_bf16_supported() else "no bf16"
            yield f"cuda:{index} {name}: {free / GIB:.1f} of {total / GIB:.1f} GiB free, {bf16}"
    else:
        yield "CUDA: not available (torch runs on the CPU)"
    yield "libraries: " + ", ".join(f"{name} {_version(name) or '(not installed)'}" for name in LIBRARIES)
    yield f"cache: {cache_dir()}; weights: {weights_dir()}"
    ok = [record for record in registry.plugins if record.status == "ok"]
    yield f"plugins: {len(ok)} ok ({', '.join(r.label for r in ok)})"
    for record in registry.plugins:
        if record.status != "ok":
            yield f"  {record.label}: {record.status}{': ' + record.error if record.error else ''}"


@dataclass(frozen=True)
class Part:
    """One part of a model: what it is and its parameter count (None when it cannot be known)."""

    name: str
    parameters: int | None
    note: str = ""
    encoder: bool = False


def model_parts(loaded: LoadedConfig, registry: Registry) -> list[Part]:
    """The LLM, its adapter, and each modality's encoder and projector, with parameter counts."""
    from anymodal.runtime.model import encoder_key, llm_settings

    model = loaded.config.model
    settings = llm_settings(model)
    parts = [Part(f"LLM {settings.path}", *_llm_parameters(settings.path))]
    if settings.adapter:
        parts.append(Part(f"adapter {settings.adapter}", *_file_parameters(Path(settings.adapter))))
    owners: dict[Hashable, str] = {}
    for name, modality in model.modalities.items():
        label = f"{name} encoder ({modality.encoder.name})"
        key = encoder_key(registry.modalities[name], modality.encoder, registry)
        if key is not None and key in owners:
            parts.append(Part(label, 0, f"the {owners[key]} encoder, shared", encoder=True))
        else:
            parts.append(Part(label, *_encoder_parameters(name, modality, registry), encoder=True))
            if key is not None:
                owners[key] = name
        weights = modality.projector.weights
        if weights:
            parts.append(
                Part(f"{name} projector ({modality.projector.name})", *_file_parameters(Path(weights)))
            )
    return parts


def memory_lines(loaded: LoadedConfig, registry: Registry) -> Iterator[str]:
    """The missing files and the weights' memory, line by line."""
    from anymodal.config.device import resolve_placement
    from anymodal.config.model_files import required_files, untrained_parts

    model = loaded.config.model
    missing = [f"{path} ({key})" for key, path in required_files(model) if not Path(path).exists()]
    yield f"model {loaded.source}: " + (
        f"{len(missing)} missing file(s)" if missing else "every file is there"
    )
    for line in missing:
        yield f"  missing {line}"
    untrained = untrained_parts(model)
    yield "untrained (no weights file; answers about them are noise): " + (", ".join(untrained) or "none")
    place = resolve_placement(model.device, model.dtype, model.encoder_device)
    parts = model_parts(loaded, registry)
    where = f"weights in {place.dtype} on {place.device}"
    if (place.encoder_device, place.encoder_dtype) != (place.device, place.dtype):
        where += f", encoders in {place.encoder_dtype} on {place.encoder_device}"
    yield where + ":"
    total_bytes, total, unknown = 0, 0, False
    for part in parts:
        dtype = place.encoder_dtype if part.encoder else place.dtype
        note = f"  ({part.note})" if part.note else ""
        if part.parameters is None:
            unknown = True
            yield f"  {part.name}: unknown{note}"
            continue
        total += part.parameters
        total_bytes += part.parameters * BYTES[dtype]
        yield f"  {part.name}: {_size(part.parameters, BYTES[dtype])}{note}"
    rest = " + unknown parts" if unknown else ""
    yield f"  total: {total / 1e6:,.1f} M parameters, {total_bytes / GIB:.2f} GiB{rest}"


def _size(parameters: int, width: int) -> str:
    return f"{parameters / 1e6:,.1f} M parameters, {parameters * width / GIB:.2f} GiB"


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _on_meta(build: Callable[[], Any]) -> tuple[int | None, str]:
    """The parameter count of what ``build`` makes on the meta device, or None and why not."""
    import torch

    try:
        with torch.device("meta"):
            module = build()
    except Exception as error:
        return (
            None,
            f"cannot tell: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
        )
    return sum(p.numel() for p in module.parameters()), ""


def _llm_parameters(path: str) -> tuple[int | None, str]:
    if not (Path(path) / "config.json").is_file():
        return None, "no config.json there"

    def build() -> Any:
        from transformers import AutoConfig, AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))

    return _on_meta(build)


def _encoder_parameters(name: str, modality: Any, registry: Registry) -> tuple[int | None, str]:
    spec = registry.get("encoder", modality.encoder.name)
    return _on_meta(lambda: spec.build(name, modality.encoder.options or None))


def _file_parameters(path: Path) -> tuple[int | None, str]:
    """Parameters in a safetensors file (an adapter directory: its adapter_model.safetensors)."""
    file = path / "adapter_model.safetensors" if path.is_dir() else path
    if file.suffix != ".safetensors" or not file.is_file():
        return None, "not a safetensors file" if file.exists() else "missing"
    from safetensors import safe_open

    total = 0
    with safe_open(str(file), framework="pt") as tensors:
        for key in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
            count = 1
            for dim in tensors.get_slice(key).get_shape():
                count *= dim
            total += count
    return total, ""
