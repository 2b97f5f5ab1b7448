"""LLMs built on first use, addressed as ``model.llm.path: builtin:<name>``: materialised once into
the cache directory (``$ANYMODAL_HOME`` or ``~/.cache/anymodal``) and reused after. Building goes
to a temporary folder renamed into place, so an interrupted build never leaves a half-written
model behind. Models whose files ship inside the package (``builtin:demo``) are resolved when a
config is loaded (:mod:`anymodal.config.sources`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from anymodal.config.sources import BUILT_MODELS, BUILTIN_PREFIX, PACKAGED_MODELS, cache_dir
from anymodal.contract.errors import UsageError
from anymodal.contract.wording import did_you_mean


def _build_tiny_untrained(directory: Path) -> None:
    from transformers.utils import logging

    from anymodal.runtime.tiny_llm import save_tiny_llm

    logging.disable_progress_bar()  # a one-shard tiny model needs no progress bar in a chat
    save_tiny_llm(directory, seed=0)


#: name -> (version, builder), for each of the config's BUILT_MODELS. Bump the version when a
#: builder's output changes.
BUILTIN_MODELS: dict[str, tuple[int, Callable[[Path], None]]] = {
    "tiny-untrained": (1, _build_tiny_untrained),
}
assert set(BUILTIN_MODELS) == set(BUILT_MODELS), "config.sources.BUILT_MODELS names every built model"


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
