"""Reading a config: the YAML file, ``key=value`` overrides, and dotted-key helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from anymodal.contract.errors import ConfigError, UsageError

#: Top-level keys with this prefix are YAML anchor holders, dropped on reading (as in Compose files).
EXTENSION_PREFIX = "x-"


def read_yaml(file: Path) -> DictConfig:
    try:
        document = OmegaConf.load(file)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ConfigError([f"{where}malformed YAML: {problem}"], source=str(file)) from None
    except OmegaConfBaseException as error:
        raise ConfigError([first_line(error)], source=str(file)) from None
    except OSError as error:
        raise UsageError(f"cannot read config file {file}: {error.strerror or error}") from None
    if not isinstance(document, DictConfig):
        raise ConfigError(["expected a mapping of keys at the top level, got a list"], source=str(file))
    # Top-level `x-...` keys hold YAML anchors for the rest of the file to reuse; they are not settings.
    for key in [key for key in document if str(key).startswith(EXTENSION_PREFIX)]:
        del document[key]
    return document


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, str, DictConfig]]:
    """(key, original text, parsed config) for each ``key=value`` override, in order."""
    parsed = []
    for text in overrides:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise UsageError(
                f"malformed override {text!r}: expected key=value",
                hint="for example generation.temperature=0.7 or model.device=cpu",
            )
        try:
            cfg = OmegaConf.from_dotlist([f"{key}={value}"])
        except (yaml.YAMLError, OmegaConfBaseException) as error:
            problem = " ".join(str(getattr(error, "problem", None) or first_line(error)).split())
            raise UsageError(
                f"malformed override {text!r}: {problem}",
                hint="quote a value with special characters: key='value'",
            ) from None
        parsed.append((key, text, cfg))
    return parsed


def normalise(data: dict[str, Any]) -> None:
    # `image:` with nothing under it means "enable image with its defaults", as `image: {}` does.
    modalities = get_key(data, "model.modalities")
    if isinstance(modalities, dict):
        for name, block in modalities.items():
            if block is None:
                modalities[name] = {}


def get_key(data: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key, or None when any step is missing or not a mapping."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def under(key: str, ancestor: str) -> bool:
    return bool(ancestor) and (key == ancestor or key.startswith((ancestor + ".", ancestor + "[")))


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
