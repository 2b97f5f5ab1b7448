"""Every local file a model config needs, checked before anything loads, so a model with missing
weights fails with one message that lists them all, not a traceback about the first; and the parts
that have no weights at all, whose answers are noise until they are trained."""

from __future__ import annotations

from pathlib import Path

from anymodal.config.schema import ModelConfig
from anymodal.config.sources import BUILT_MODELS, BUILTIN_PREFIX
from anymodal.contract.errors import ModelLoadError


def required_files(config: ModelConfig) -> list[tuple[str, str]]:
    """(config key, path) of every local path the model loads: LLM, adapter, encoder and
    projector weights. Hub ids (``org/name``) and ``builtin:`` models are not local."""
    found = [("model.llm.path", config.llm.path), ("model.llm.adapter", config.llm.adapter)]
    for name, modality in config.modalities.items():
        found.append((f"model.modalities.{name}.encoder.weights", modality.encoder.weights))
        found.append((f"model.modalities.{name}.projector.weights", modality.projector.weights))
    # Paths were made absolute when the config was loaded; anything else is not a local path.
    return [(key, value) for key, value in found if value and Path(value).is_absolute()]


def check_model_files(config: ModelConfig) -> None:
    """ModelLoadError listing every missing file (each once, with the keys that name it)."""
    missing: dict[str, list[str]] = {}
    for key, path in required_files(config):
        if not Path(path).exists():
            missing.setdefault(path, []).append(key)
    if not missing:
        return
    listed = "; ".join(f"{path} ({', '.join(keys)})" for path, keys in missing.items())
    count = f"{len(missing)} file{'s' if len(missing) > 1 else ''}"
    raise ModelLoadError(
        f"the model is missing {count}: {listed}",
        hint=config.weights_help or "put the files there, or point the keys named at where they are",
    )


def untrained_parts(config: ModelConfig) -> list[str]:
    """The parts of the model that no weights file trains: the LLM when it is a random built-in one,
    and each modality's encoder and projector without ``weights`` (they run from a fixed seed)."""
    untrained_llms = [BUILTIN_PREFIX + name for name in BUILT_MODELS]
    parts = [f"the LLM ({config.llm.path})"] if config.llm.path in untrained_llms else []
    for name, modality in config.modalities.items():
        for part, section in (("encoder", modality.encoder), ("projector", modality.projector)):
            if not section.weights:
                parts.append(f"{name} {part}" + (f" ({section.name})" if section.name else ""))
    return parts
