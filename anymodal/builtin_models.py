"""Models that ship with anymodal, addressed as ``builtin:<name>`` (or ``builtin:<name>/<file>``).

Two kinds:

* packaged models, whose files lie inside the installed package (``anymodal/models/<name>``):
  ``builtin:demo/llm`` is that directory, resolved when a config is loaded;
* built models, materialised once into the cache directory (``$ANYMODAL_HOME`` or
  ``~/.cache/anymodal``) when first used and reused after. Building goes to a temporary folder
  renamed into place, so an interrupted build never leaves a half-written model behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from anymodal.errors import UsageError
from anymodal.suggest import did_you_mean

BUILTIN_PREFIX = "builtin:"


def _build_tiny_untrained(directory: Path) -> None:
    from transformers.utils import logging

    from anymodal.testing.tiny import save_tiny_llm

    logging.disable_progress_bar()  # a one-shard tiny model needs no progress bar in a chat
    save_tiny_llm(directory, seed=0)


#: name -> (version, builder). Bump the version when a builder's output changes.
BUILTIN_MODELS: dict[str, tuple[int, Callable[[Path], None]]] = {
    "tiny-untrained": (1, _build_tiny_untrained),
}


#: Models whose files ship inside the package, under ``anymodal/models/<name>``.
PACKAGED_MODELS = ("demo",)


def packaged_path(value: str) -> str | None:
    """``builtin:<packaged model>[/<file>]`` -> the absolute path inside the package; else None."""
    if not value.startswith(BUILTIN_PREFIX):
        return None
    name, _, rest = value[len(BUILTIN_PREFIX) :].partition("/")
    if name not in PACKAGED_MODELS:
        return None
    path = Path(__file__).parent / "models" / name / rest
    if not path.exists():
        raise UsageError(
            f"{value}: {path} is missing from the installed anymodal",
            hint="reinstall anymodal (pip install --force-reinstall anymodal)",
        )
    return str(path)


def cache_dir() -> Path:
    return Path(os.environ.get("ANYMODAL_HOME") or Path.home() / ".cache" / "anymodal")


def resolve_llm_path(path: str) -> str:
    """``builtin:<name>`` -> the materialised directory; any other value is returned unchanged."""
    if not path.startswith(BUILTIN_PREFIX):
        return path
    name = path[len(BUILTIN_PREFIX) :]
    if name not in BUILTIN_MODELS:
        known = sorted([*BUILTIN_MODELS, *PACKAGED_MODELS])
        raise UsageError(
            f"unknown built-in model {name!r}{did_you_mean(name, known)}",
            hint=f"built-in models: {', '.join(known)}",
        )
    version, build = BUILTIN_MODELS[name]
    target = cache_dir() / "models" / f"{name}-v{version}"
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            build(staging)
            if target.exists():  # a concurrent build won, or an old broken copy: replace it
                shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return str(target)
