"""Find a config, parse it, apply ``key=value`` overrides, validate all of it, resolve its paths.

Everything here is cheap (YAML and dataclasses, no torch), so a bad config is refused before a
model is loaded. Schema problems, value problems and registry problems (unknown modality,
encoder, projector, bridge or template names; bad plugin options) are collected together and
raised once as a :class:`ConfigError`; so, last, is a modality whose preprocessing emits a
tensor layout its encoder does not take, where the plugins declare both. The stages have a module
each: finding the file (:mod:`~anymodal.config.sources`), parsing it and its overrides
(:mod:`~anymodal.config.parse`), checking it (:mod:`~anymodal.config.checks`); this one runs them
and resolves paths.

``${weights:<relative path>}`` in a value is that path under anymodal's weights directory,
``$ANYMODAL_HOME/weights`` (default ``~/.cache/anymodal/weights``); the real-model presets keep
their files there.

Relative paths (``model.llm.path``, ``model.llm.adapter``, ``*.encoder.weights``,
``*.projector.weights``) are resolved against the config file's directory; for presets shipped
inside anymodal and for values set by an override, against the current directory. See
:func:`resolve_path` for which values count as local paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from anymodal.config.checks import (
    annotate,
    drop_uninstalled_optional,
    layout_issues,
    registry_issues,
    value_issues,
)
from anymodal.config.parse import first_line, normalise, parse_overrides, read_yaml, under
from anymodal.config.schema import AnymodalConfig
from anymodal.config.sources import BUILTIN_PREFIX, locate, packaged_path, plain_model_dir
from anymodal.config.validate import build, config_key, find_issues
from anymodal.contract.errors import ConfigError

if TYPE_CHECKING:
    from anymodal.contract.registry import Registry


@dataclass
class LoadedConfig:
    """A validated config and where it came from.

    ``config`` is typed; after registry checks each modality's encoder/projector ``name`` is the
    concrete one used and its ``options`` is an instance of the spec's options dataclass.
    ``source`` is the preset name or the path as given (for messages); ``file`` is the YAML file
    read; ``base_dir`` is the directory its relative paths were resolved against. ``left_out``
    names the optional modalities dropped because no installed plugin provides them.
    """

    config: AnymodalConfig
    source: str
    file: Path
    base_dir: Path
    overrides: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-able values (options dataclasses become dicts)."""
        return cast(dict[str, Any], _plain(self.config))

    def resolved_yaml(self) -> str:
        """The resolved config as YAML, loadable again with :func:`load_config`."""
        header = f"# anymodal config resolved from {self.source}\n"
        if self.overrides:
            header += f"# overrides: {' '.join(self.overrides)}\n"
        return header + OmegaConf.to_yaml(OmegaConf.create(self.to_dict()))


def load_config(
    source: str | Path | None,
    overrides: Sequence[str] = (),
    registry: Registry | None = None,
) -> LoadedConfig:
    """Load, override, validate and resolve a config; see the module docstring for ``source``.

    With a ``registry`` every plugin name and options dict is checked too. Raises
    :class:`UsageError` when the config cannot be found or an override is malformed, and
    :class:`ConfigError` listing every problem when the config is invalid.
    """
    if isinstance(overrides, str):
        overrides = (overrides,)  # one override passed bare would otherwise split into characters
    parsed = parse_overrides(overrides)
    model_dir = plain_model_dir(source)
    if model_dir is not None:
        # A Hugging Face model directory: chat with that LLM alone, every other key at its default.
        file, label, base_dir = model_dir / "config.json", str(source), Path.cwd()
        document = OmegaConf.create({"model": {"llm": {"path": str(model_dir)}}})
    else:
        file, label, base_dir = locate(source)
        document = read_yaml(file)
    try:
        merged = OmegaConf.merge(document, *(cfg for _, _, cfg in parsed))
        container = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise ConfigError([f"{key + ': ' if key else ''}{first_line(error)}"], source=str(file)) from None
    # The document is a mapping (checked in _read_yaml); its keys are whatever YAML gave.
    data = cast(dict[str, Any], container)
    normalise(data)

    issues = find_issues(AnymodalConfig, data) + value_issues(data)
    left_out: tuple[str, ...] = ()
    if registry is not None:
        left_out = drop_uninstalled_optional(data, registry)
        issues += registry_issues(data, registry)
    if issues:
        raise ConfigError([annotate(issue, parsed) for issue in issues], source=str(file))

    config = build(AnymodalConfig, data)
    override_keys = [key for key, _, _ in parsed]
    _resolve_paths(config, base_dir, override_keys)
    if registry is not None:
        _attach_plugin_choices(config, registry)
        # Last: the layouts the plugins declare depend on the options as their dataclasses hold them.
        mismatches = layout_issues(config.model, registry)
        if mismatches:
            raise ConfigError([annotate(issue, parsed) for issue in mismatches], source=str(file))
    return LoadedConfig(config, label, file, base_dir, tuple(overrides), left_out)


def resolve_path(value: str | None, base_dir: Path) -> str | None:
    """``value`` as an absolute path when it is a local path, else unchanged.

    A value is a local path when it starts with ``.``, ``/`` or ``~`` (or is absolute), or when
    it names something that exists relative to ``base_dir``. ``builtin:<name>[/<file>]`` of a model
    packaged inside anymodal becomes its installed path; other ``builtin:`` values (built on first
    use) and hub ids such as ``org/name`` that do not exist locally are left untouched.
    """
    if value is None:
        return value
    if value.startswith(BUILTIN_PREFIX):
        return packaged_path(value) or value
    candidate = Path(value).expanduser()
    local = value.startswith((".", "/", "~")) or candidate.is_absolute() or (base_dir / candidate).exists()
    # normpath, not resolve(): keep the user's symlinks, only tidy `..` and `.`.
    return os.path.normpath(base_dir / candidate) if local else value


def _resolve_paths(config: AnymodalConfig, base_dir: Path, override_keys: list[str]) -> None:
    cwd = Path.cwd()

    def base(key: str) -> Path:
        # An override is typed on the command line, so its relative paths mean "from here".
        return cwd if any(under(key, ok) for ok in override_keys) else base_dir

    llm = config.model.llm
    llm.path = resolve_path(llm.path, base("model.llm.path")) or llm.path
    train, data = config.train, config.train.data
    data.train = resolve_path(data.train, base("train.data.train"))
    data.eval = resolve_path(data.eval, base("train.data.eval"))
    data.media_root = resolve_path(data.media_root, base("train.data.media_root"))
    train.init_from = resolve_path(train.init_from, base("train.init_from"))
    train.feature_cache = resolve_path(train.feature_cache, base("train.feature_cache"))
    # An output directory is always local, even before it exists.
    train.output_dir = os.path.normpath(base("train.output_dir") / Path(train.output_dir).expanduser())
    llm.adapter = resolve_path(llm.adapter, base("model.llm.adapter"))
    for name, modality in config.model.modalities.items():
        for part, section in (("encoder", modality.encoder), ("projector", modality.projector)):
            section.weights = resolve_path(section.weights, base(f"model.modalities.{name}.{part}.weights"))


def _attach_plugin_choices(config: AnymodalConfig, registry: Registry) -> None:
    """Pin each modality's encoder/projector name and turn its options into the spec's dataclass."""
    for name, modality in config.model.modalities.items():
        spec = registry.modalities[name]
        for section, table, default in (
            (modality.encoder, registry.encoders, spec.default_encoder),
            (modality.projector, registry.projectors, spec.default_projector),
        ):
            section.name = section.name or default
            options_cls = table[section.name].options
            if options_cls is not None:
                # The schema types options as a dict (the YAML form); the runtime wants the instance.
                section.options = cast(Any, build(options_cls, section.options))


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {config_key(f): _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value
