"""Where a config comes from: a preset name, ``builtin:<name>``, a ``.yaml`` file, a model or
training-run directory, or a Hugging Face model directory; and anymodal's cache and weights
directories (``${weights:...}`` in a value). No torch, no plugins: only names and paths.

* None or ``default``: the user's own ``default`` preset when ``$ANYMODAL_CONFIG_PATH`` has one,
  else the built-in demo model (``builtin:demo``).
* ``builtin:<name>``: a model whose files ship inside anymodal (its directory's anymodal.yaml).
* a bare name (no path separator, no ``.yaml`` suffix): a preset, ``<name>.yaml`` in the first
  directory of ``$ANYMODAL_CONFIG_PATH`` (``os.pathsep``-separated) that has it, else in the
  presets shipped with anymodal. Write ``./name`` for a local directory called ``name``.
* a ``.yaml`` file, or a directory holding ``anymodal.yaml`` (a saved model or checkpoint).
* a Hugging Face model directory (``config.json``, no ``anymodal.yaml``): that LLM, text only,
  every other key at its schema default.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from omegaconf import OmegaConf

from anymodal.contract.errors import UsageError
from anymodal.contract.wording import did_you_mean

BUILTIN_PREFIX = "builtin:"
#: Models whose files ship inside the package, under ``anymodal/models/<name>``.
PACKAGED_MODELS = ("demo",)
#: LLMs built on first use (:mod:`anymodal.runtime.builtin_llm` builds them), all random weights.
BUILT_MODELS = ("tiny-untrained",)
PRESET_PATH_ENV = "ANYMODAL_CONFIG_PATH"
CHECKPOINT_CONFIG = "anymodal.yaml"
#: In a training run's output directory: a text file naming the newest checkpoint directory.
LATEST_CHECKPOINT = "latest"
#: What a command uses when no model is named: a ``default`` preset of the user's, else DEFAULT_MODEL.
DEFAULT_PRESET = "default"
DEFAULT_MODEL = BUILTIN_PREFIX + "demo"


def cache_dir() -> Path:
    """anymodal's cache: ``$ANYMODAL_HOME``, default ``~/.cache/anymodal``."""
    return Path(os.environ.get("ANYMODAL_HOME") or Path.home() / ".cache" / "anymodal")


def weights_dir(relative: str = "") -> str:
    """``$ANYMODAL_HOME/weights/<relative>``: the ``${weights:...}`` interpolation of configs."""
    return str(cache_dir() / "weights" / relative)


OmegaConf.register_resolver("weights", weights_dir, replace=True)


OmegaConf.register_resolver("weights", weights_dir, replace=True)


def packaged_path(value: str) -> str | None:
    """``builtin:<packaged model>[/<file>]`` -> the absolute path inside the package; else None."""
    if not value.startswith(BUILTIN_PREFIX):
        return None
    name, _, rest = value[len(BUILTIN_PREFIX) :].partition("/")
    if name not in PACKAGED_MODELS:
        return None
    # The packaged models' files are package data of anymodal.models (read as files, not imported).
    path = Path(__file__).resolve().parents[1] / "models" / name / rest
    if not path.exists():
        raise UsageError(
            f"{value}: {path} is missing from the installed anymodal",
            hint="reinstall anymodal (pip install --force-reinstall anymodal)",
        )
    return str(path)


def locate(source: str | Path | None) -> tuple[Path, str, Path]:
    """(YAML file, label for messages, base directory for relative paths) of ``source``."""
    if source is None or source == DEFAULT_PRESET:
        source = DEFAULT_PRESET if DEFAULT_PRESET in preset_table() else DEFAULT_MODEL
    label = str(source)
    if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
        source = _builtin_directory(source)
    elif isinstance(source, str) and _is_preset_name(source):
        file, packaged = _find_preset(source)
        return file, source, Path.cwd() if packaged else file.parent
    path = latest_checkpoint(Path(source).expanduser().absolute())
    if path.is_dir():
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


def latest_checkpoint(path: Path) -> Path:
    """``path``, or for a training run's output directory (no anymodal.yaml, a ``latest`` file
    naming its newest checkpoint), or for that ``latest`` file itself, that checkpoint."""
    if path.name == LATEST_CHECKPOINT and path.is_file():
        path = path.parent  # the pointer stands for its run
    pointer = path / LATEST_CHECKPOINT
    if not (path / CHECKPOINT_CONFIG).is_file() and pointer.is_file():
        return path / pointer.read_text().strip()
    return path


def plain_model_dir(source: str | Path | None) -> Path | None:
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
    return {name: file for name, (file, _) in preset_table().items()}


def preset_table() -> dict[str, tuple[Path, bool]]:
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
    table = preset_table()
    if name in table:
        return table[name]
    known = sorted({*table, DEFAULT_PRESET})
    listed = ", ".join(known)
    raise UsageError(
        f"unknown preset {name!r}{did_you_mean(name, known)}",
        hint=f"available presets: {listed}; or pass a .yaml file or a model directory (./{name})",
    )
