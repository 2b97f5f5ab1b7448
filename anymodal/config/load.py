"""Find a config, parse it, apply ``key=value`` overrides, validate all of it, resolve its paths.

Everything here is cheap (YAML and dataclasses, no torch), so a bad config is refused before a
model is loaded. Schema problems, value problems and registry problems (unknown modality,
encoder, projector, bridge or template names; bad plugin options) are collected together and
raised once as a :class:`ConfigError`. The module is a little over the house ~400 lines because
the stages (find, parse, check, resolve) share one issue-collecting flow and read top to bottom.

Where a config comes from (``source``):

* None or ``default``: the user's own ``default`` preset when ``$ANYMODAL_CONFIG_PATH`` has one,
  else the built-in demo model (``builtin:demo``).
* ``builtin:<name>``: a model whose files ship inside anymodal (its directory's anymodal.yaml).
* a bare name (no path separator, no ``.yaml`` suffix): a preset, ``<name>.yaml`` in the first
  directory of ``$ANYMODAL_CONFIG_PATH`` (``os.pathsep``-separated) that has it, else in the
  presets shipped with anymodal. Write ``./name`` for a local directory called ``name``.
* a ``.yaml`` file, or a directory holding ``anymodal.yaml`` (a saved model or checkpoint).
* a Hugging Face model directory (``config.json``, no ``anymodal.yaml``): that LLM, text only,
  every other key at its schema default.

``${weights:<relative path>}`` in a value is that path under anymodal's weights directory,
``$ANYMODAL_HOME/weights`` (default ``~/.cache/anymodal/weights``); the real-model presets keep
their files there.

Relative paths (``model.llm.path``, ``model.llm.adapter``, ``*.encoder.weights``,
``*.projector.weights``) are resolved against the config file's directory; for presets shipped
inside anymodal and for values set by an override, against the current directory. See
:func:`resolve_path` for which values count as local paths.
"""

from __future__ import annotations

import importlib.resources
import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from anymodal.builtin_models import BUILTIN_PREFIX, PACKAGED_MODELS, cache_dir, packaged_path
from anymodal.config.device import device_name_problem
from anymodal.config.schema import AnymodalConfig, LLMConfig
from anymodal.config.validate import Issue, build, find_issues
from anymodal.errors import ConfigError, UsageError
from anymodal.suggest import did_you_mean

if TYPE_CHECKING:
    from anymodal.plugins import Registry

PRESET_PATH_ENV = "ANYMODAL_CONFIG_PATH"
CHECKPOINT_CONFIG = "anymodal.yaml"
#: In a training run's output directory: a text file naming the newest checkpoint directory.
LATEST_CHECKPOINT = "latest"
#: What a command uses when no model is named: a ``default`` preset of the user's, else DEFAULT_MODEL.
DEFAULT_PRESET = "default"
DEFAULT_MODEL = BUILTIN_PREFIX + "demo"


def weights_dir(relative: str = "") -> str:
    """``$ANYMODAL_HOME/weights/<relative>``: the ``${weights:...}`` interpolation of configs."""
    return str(cache_dir() / "weights" / relative)


OmegaConf.register_resolver("weights", weights_dir, replace=True)
#: Top-level keys with this prefix are YAML anchor holders, dropped on reading (as in Compose files).
EXTENSION_PREFIX = "x-"
_PLUGINS_HINT = "run `anymodal plugins` to see what is installed"


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
    parsed = _parse_overrides(overrides)
    model_dir = _plain_model_dir(source)
    if model_dir is not None:
        # A Hugging Face model directory: chat with that LLM alone, every other key at its default.
        file, label, base_dir = model_dir / "config.json", str(source), Path.cwd()
        document = OmegaConf.create({"model": {"llm": {"path": str(model_dir)}}})
    else:
        file, label, base_dir = locate(source)
        document = _read_yaml(file)
    try:
        merged = OmegaConf.merge(document, *(cfg for _, _, cfg in parsed))
        container = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise ConfigError([f"{key + ': ' if key else ''}{_first_line(error)}"], source=str(file)) from None
    # The document is a mapping (checked in _read_yaml); its keys are whatever YAML gave.
    data = cast(dict[str, Any], container)
    _normalise(data)

    issues = find_issues(AnymodalConfig, data) + _value_issues(data)
    left_out: tuple[str, ...] = ()
    if registry is not None:
        left_out = _drop_uninstalled_optional(data, registry)
        issues += _registry_issues(data, registry)
    if issues:
        raise ConfigError([_annotate(issue, parsed) for issue in issues], source=str(file))

    config = build(AnymodalConfig, data)
    override_keys = [key for key, _, _ in parsed]
    _resolve_paths(config, base_dir, override_keys)
    if registry is not None:
        _attach_plugin_choices(config, registry)
    return LoadedConfig(config, label, file, base_dir, tuple(overrides), left_out)


# --- finding the file -------------------------------------------------------------------------


def locate(source: str | Path | None) -> tuple[Path, str, Path]:
    """(YAML file, label for messages, base directory for relative paths) of ``source``."""
    if source is None or source == DEFAULT_PRESET:
        source = DEFAULT_PRESET if DEFAULT_PRESET in _preset_table() else DEFAULT_MODEL
    label = str(source)
    if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
        source = _builtin_directory(source)
    elif isinstance(source, str) and _is_preset_name(source):
        file, packaged = _find_preset(source)
        return file, source, Path.cwd() if packaged else file.parent
    path = Path(source).expanduser().absolute()
    if path.is_dir():
        path = latest_checkpoint(path)
        file = path / CHECKPOINT_CONFIG
        if not file.is_file():
            raise UsageError(
                f"directory {path} has no {CHECKPOINT_CONFIG}",
                hint="pass a model directory saved by anymodal, a Hugging Face model directory (with "
                "config.json), a .yaml config file, or a preset name",
            )
        return file, label, path
    if not path.exists():
        raise UsageError(f"config file not found: {path}", hint="check the path, or pass a preset name")
    return path, label, path.parent


def _builtin_directory(source: str) -> Path:
    """The installed directory of a packaged model (``builtin:demo``), which holds its anymodal.yaml."""
    directory = packaged_path(source)
    if directory is None:
        name = source[len(BUILTIN_PREFIX) :]
        raise UsageError(
            f"unknown built-in model {name!r}{did_you_mean(name, PACKAGED_MODELS)}",
            hint="built-in models: " + ", ".join(BUILTIN_PREFIX + model for model in PACKAGED_MODELS),
        )
    return Path(directory)


def latest_checkpoint(directory: Path) -> Path:
    """``directory``, or for a training run's output directory (no anymodal.yaml, a ``latest`` file
    naming its newest checkpoint) that checkpoint."""
    pointer = directory / LATEST_CHECKPOINT
    if not (directory / CHECKPOINT_CONFIG).is_file() and pointer.is_file():
        return directory / pointer.read_text().strip()
    return directory


def _plain_model_dir(source: str | Path | None) -> Path | None:
    """``source`` as a directory when it is a Hugging Face model directory without anymodal.yaml."""
    if source is None or (isinstance(source, str) and _is_preset_name(source)):
        return None
    path = Path(source).expanduser().absolute()
    if path.is_dir() and not (path / CHECKPOINT_CONFIG).is_file() and (path / "config.json").is_file():
        return path
    return None


def preset_dirs() -> list[tuple[Path, bool]]:
    """Directories searched for presets, in order, each with whether it ships inside anymodal."""
    entries = os.environ.get(PRESET_PATH_ENV, "").split(os.pathsep)
    found = [(Path(entry).expanduser().absolute(), False) for entry in entries if entry]
    packaged = _packaged_presets_dir()
    return found + ([(packaged, True)] if packaged else [])


def available_presets() -> dict[str, Path]:
    """Every preset name and the file it resolves to (earlier directories win)."""
    return {name: file for name, (file, _) in _preset_table().items()}


def _preset_table() -> dict[str, tuple[Path, bool]]:
    table: dict[str, tuple[Path, bool]] = {}
    for directory, packaged in preset_dirs():
        if directory.is_dir():
            for file in sorted(directory.glob("*.yaml")):
                table.setdefault(file.stem, (file, packaged))
    return table


def _packaged_presets_dir() -> Path | None:
    try:
        root = importlib.resources.files("anymodal.configs")
        # A namespace package (configs/ has no __init__.py) gives a MultiplexedPath; its entries are Paths.
        candidate = root if isinstance(root, Path) else Path(str(next(iter(root.iterdir())))).parent
    except (ModuleNotFoundError, StopIteration, OSError):
        # A source checkout run without the package data mapped: use the repository's configs/.
        candidate = Path(__file__).resolve().parents[2] / "configs"
    return candidate if candidate.is_dir() else None


def _is_preset_name(source: str) -> bool:
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return (
        not any(sep in source for sep in separators)
        and not source.endswith((".yaml", ".yml"))
        and not source.startswith((".", "~"))
    )


def _find_preset(name: str) -> tuple[Path, bool]:
    table = _preset_table()
    if name in table:
        return table[name]
    known = sorted({*table, DEFAULT_PRESET})
    listed = ", ".join(known)
    raise UsageError(
        f"unknown preset {name!r}{did_you_mean(name, known)}",
        hint=f"available presets: {listed}; or pass a .yaml file or a model directory (./{name})",
    )


# --- parsing ----------------------------------------------------------------------------------


def _read_yaml(file: Path) -> DictConfig:
    try:
        document = OmegaConf.load(file)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ConfigError([f"{where}malformed YAML: {problem}"], source=str(file)) from None
    except OmegaConfBaseException as error:
        raise ConfigError([_first_line(error)], source=str(file)) from None
    except OSError as error:
        raise UsageError(f"cannot read config file {file}: {error.strerror or error}") from None
    if not isinstance(document, DictConfig):
        raise ConfigError(["expected a mapping of keys at the top level, got a list"], source=str(file))
    # Top-level `x-...` keys hold YAML anchors for the rest of the file to reuse; they are not settings.
    for key in [key for key in document if str(key).startswith(EXTENSION_PREFIX)]:
        del document[key]
    return document


def _parse_overrides(overrides: Sequence[str]) -> list[tuple[str, str, DictConfig]]:
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
            problem = " ".join(str(getattr(error, "problem", None) or _first_line(error)).split())
            raise UsageError(
                f"malformed override {text!r}: {problem}",
                hint="quote a value with special characters: key='value'",
            ) from None
        parsed.append((key, text, cfg))
    return parsed


def _normalise(data: dict[str, Any]) -> None:
    # `image:` with nothing under it means "enable image with its defaults", as `image: {}` does.
    modalities = _get(data, "model.modalities")
    if isinstance(modalities, dict):
        for name, block in modalities.items():
            if block is None:
                modalities[name] = {}


# --- checks beyond types ----------------------------------------------------------------------

_RANGES: list[tuple[str, Any, str]] = [
    ("generation.max_new_tokens", lambda v: v >= 1, "must be at least 1"),
    ("generation.temperature", lambda v: v >= 0, "must be 0 or more (0 means greedy)"),
    ("generation.top_p", lambda v: 0 < v <= 1, "must be more than 0 and at most 1"),
    ("model.max_input_mb", lambda v: v > 0, "must be more than 0"),
    ("train.epochs", lambda v: v >= 1, "must be at least 1"),
    ("train.max_steps", lambda v: v >= 1, "must be at least 1"),
    ("train.batch_size", lambda v: v >= 1, "must be at least 1"),
    ("train.grad_accum", lambda v: v >= 1, "must be at least 1"),
    ("train.max_grad_norm", lambda v: v >= 0, "must be 0 (no clipping) or more"),
    ("train.log_every", lambda v: v >= 1, "must be at least 1"),
    ("train.eval_every", lambda v: v >= 0, "must be 0 (only at the end) or more"),
    ("train.save_every", lambda v: v >= 0, "must be 0 (only at the end) or more"),
    ("train.keep_checkpoints", lambda v: v >= 0, "must be 0 (keep all) or more"),
    ("train.num_workers", lambda v: v >= 0, "must be 0 or more"),
    ("train.data.max_length", lambda v: v >= 8, "must be at least 8"),
    ("train.data.eval_fraction", lambda v: 0 <= v < 1, "must be at least 0 and less than 1"),
    ("train.optimizer.lr", lambda v: v > 0, "must be more than 0"),
    ("train.optimizer.weight_decay", lambda v: v >= 0, "must be 0 or more"),
    ("train.schedule.warmup_steps", lambda v: v >= 0, "must be 0 or more"),
    ("train.schedule.warmup_ratio", lambda v: 0 <= v < 1, "must be at least 0 and less than 1"),
    ("train.schedule.min_lr_ratio", lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    ("train.lora.r", lambda v: v >= 1, "must be at least 1"),
    ("train.lora.dropout", lambda v: 0 <= v < 1, "must be at least 0 and less than 1"),
]


def _value_issues(data: Mapping[str, Any]) -> list[Issue]:
    issues = []
    for key, ok, rule in _RANGES:
        value = _get(data, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not ok(value):
            issues.append(Issue(key, f"{key}: {rule}, got {value!r}"))
    for key in ("model.device", "model.encoder_device"):
        device = _get(data, key)
        problem = device_name_problem(device) if isinstance(device, str) else None
        if problem:
            issues.append(Issue(key, f"{key}: {problem}"))
    for key in ("model.span_open", "model.span_close"):
        span = _get(data, key)
        if isinstance(span, str):
            try:
                span.format(name="x")
            except (KeyError, IndexError, ValueError):
                issues.append(
                    Issue(
                        key,
                        f"{key}: {span!r} is not a valid span: use {{name}} for the modality "
                        "name and {{ }} for literal braces",
                    )
                )
    return issues + _train_issues(data)


def _train_issues(data: Mapping[str, Any]) -> list[Issue]:
    issues = []
    betas = _get(data, "train.optimizer.betas")
    if isinstance(betas, list) and (
        len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
    ):
        issues.append(
            Issue(
                "train.optimizer.betas", f"train.optimizer.betas: must be two numbers in [0, 1), got {betas}"
            )
        )
    projectors, modalities = _get(data, "train.projectors"), _get(data, "model.modalities")
    if isinstance(projectors, list) and isinstance(modalities, Mapping):
        for name in projectors:
            if name not in modalities:
                enabled = ", ".join(map(str, modalities)) or "none"
                issues.append(
                    Issue(
                        "train.projectors",
                        f"train.projectors: {name!r} is not an enabled modality"
                        f"{did_you_mean(str(name), modalities)} (enabled: {enabled})",
                    )
                )
    return issues


def _drop_uninstalled_optional(data: dict[str, Any], registry: Registry) -> tuple[str, ...]:
    """Remove the modalities marked ``optional: true`` that no installed plugin provides; their names."""
    modalities = _get(data, "model.modalities")
    if not isinstance(modalities, dict):
        return ()
    dropped = tuple(
        str(name)
        for name, block in modalities.items()
        if isinstance(block, Mapping) and block.get("optional") is True and name not in registry.modalities
    )
    for name in dropped:
        del modalities[name]
    return dropped


def _registry_issues(data: Mapping[str, Any], registry: Registry) -> list[Issue]:
    issues = []
    bridge = _get(data, "model.llm.bridge")
    bridge = LLMConfig.bridge if bridge is None else bridge  # the default must be installed too
    if isinstance(bridge, str) and bridge not in registry.bridges:
        # The default bridge ships as its own distribution; say which when it is the one missing.
        what = "bridge 'hf' is not installed: anymodal install anymodal-hf" if bridge == "hf" else None
        issues.append(_unknown("model.llm.bridge", "bridge", bridge, registry.bridges, registry, what))
    template = _get(data, "model.template")
    if (
        isinstance(template, str)
        and template not in ("auto", "tokenizer")
        and template not in registry.templates
    ):
        issues.append(_unknown("model.template", "template", template, registry.templates, registry))
    fallback = _get(data, "model.fallback_template")
    if isinstance(fallback, str) and fallback not in registry.templates:
        issues.append(_unknown("model.fallback_template", "template", fallback, registry.templates, registry))
    modalities = _get(data, "model.modalities")
    for name, block in modalities.items() if isinstance(modalities, Mapping) else ():
        issues += _modality_issues(str(name), block, registry)
    return issues


def _modality_issues(name: str, block: Any, registry: Registry) -> list[Issue]:
    key = f"model.modalities.{name}"
    spec = registry.modalities.get(name)
    issues = [] if spec else [_unknown(key, "modality", name, registry.modalities, registry)]
    if not isinstance(block, Mapping):
        return issues
    for part, table in (("encoder", registry.encoders), ("projector", registry.projectors)):
        section = block.get(part, {})
        if not isinstance(section, Mapping) or not isinstance(section.get("name"), (str, type(None))):
            continue  # a schema problem, already reported
        chosen = section.get("name") or (getattr(spec, f"default_{part}") if spec else None)
        if chosen is None:
            continue
        part_spec = table.get(chosen)
        if part_spec is None:
            default = f"modality {name!r} defaults to {part} {chosen!r}, which is not installed"
            what = None if section.get("name") else default
            issues.append(_unknown(f"{key}.{part}.name", part, chosen, table, registry, what))
            continue
        supported = getattr(part_spec, "modalities", ())
        if supported and name not in supported:
            issues.append(
                Issue(
                    f"{key}.{part}.name",
                    f"{key}.{part}.name: {part} {chosen!r} does not support "
                    f"modality {name!r} (it supports {', '.join(supported)})",
                )
            )
        options = section.get("options", {})
        if isinstance(options, Mapping):
            issues += _options_issues(part, chosen, part_spec.options, options, f"{key}.{part}.options")
    preprocess = block.get("preprocess", {})
    if spec is not None and isinstance(preprocess, Mapping):
        issues += _preprocess_issues(spec.preprocess, preprocess, f"{key}.preprocess")
    return issues


def _preprocess_issues(function: Any, options: Mapping[str, Any], key: str) -> list[Issue]:
    """Option keys the preprocessor's signature does not take (skipped when it takes ``**kwargs``).

    Values are the plugin's to check: it knows their meaning and raises on bad ones."""
    try:
        parameters = list(inspect.signature(function).parameters.values())[1:]  # [0] is the decoded input
    except (TypeError, ValueError):  # a builtin or C function: nothing to read
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return []
    known = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return [
        Issue(
            f"{key}.{option}",
            f"unknown key '{key}.{option}'{did_you_mean(str(option), known)} "
            f"(the preprocessor takes: {', '.join(known) or 'no options'})",
        )
        for option in options
        if option not in known
    ]


def _options_issues(
    kind: str, name: str, options_cls: type | None, options: Mapping[str, Any], key: str
) -> list[Issue]:
    if options_cls is None:
        if options:
            given = ", ".join(str(k) for k in options)
            return [Issue(key, f"{key}: {kind} {name!r} takes no options, got {given}")]
        return []
    try:
        return find_issues(options_cls, options, key)
    except TypeError as error:  # the plugin's options class cannot be introspected: its bug
        return [Issue(key, f"{key}: cannot check the options of {kind} {name!r}: {error}")]


def _unknown(
    key: str, kind: str, name: str, table: Mapping[str, Any], registry: Registry, what: str | None = None
) -> Issue:
    """``<key>: unknown <kind> 'x' (did you mean 'y'?); installed <kind>s: ...`` and the plugins hint."""
    installed = ", ".join(sorted(table)) or "none"
    failed = f"; {len(registry.failed)} plugin(s) failed to load" if registry.failed else ""
    what = what or f"unknown {kind} {name!r}{did_you_mean(name, table)}"
    kinds = "modalities" if kind == "modality" else f"{kind}s"
    text = f"{key}: {what}; installed {kinds}: {installed}{failed} ({_PLUGINS_HINT})"
    return Issue(key, text)


def _annotate(issue: Issue, parsed: list[tuple[str, str, DictConfig]]) -> str:
    # The last override of a key wins, so it is the one to blame.
    for key, text, _ in reversed(parsed):
        if _under(issue.key, key) or _under(key, issue.key):
            return f"{issue.text} (from override {text!r})"
    return issue.text


# --- after validation -------------------------------------------------------------------------


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
        return cwd if any(_under(key, ok) for ok in override_keys) else base_dir

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


# --- small helpers ----------------------------------------------------------------------------


def _get(data: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key, or None when any step is missing or not a mapping."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _under(key: str, ancestor: str) -> bool:
    return bool(ancestor) and (key == ancestor or key.startswith((ancestor + ".", ancestor + "[")))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value
