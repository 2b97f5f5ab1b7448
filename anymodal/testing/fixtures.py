"""pytest fixtures for plugin authors, loaded by pytest in any environment where anymodal is
installed (entry point ``pytest11``); importing this module imports no torch.

* ``use_plugins(*modules)``: anymodal's process-wide registry, the one ``anymodal`` commands run
  in-process (through click's ``CliRunner``, say) consult, with these plugin modules registered
  directly, without entry points, beside the installed plugins; restored after the test.
* ``write_av(name, audio, rate=44100, codec="aac", video_seconds=0.0)``: a media file in the
  test's ``tmp_path`` (see :func:`anymodal.testing.media.write_av`), the test skipped when this
  PyAV build cannot encode the codec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from anymodal.contract.registry import Registry, load_registry, set_registry
from anymodal.testing import media


@pytest.fixture
def use_plugins() -> Iterator[Callable[..., Registry]]:
    def use(*modules: object) -> Registry:
        registry = load_registry(plugins=modules)
        set_registry(registry)
        return registry

    yield use
    set_registry(None)


@pytest.fixture
def write_av(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, audio: Any, *args: Any, **options: Any) -> Path:
        try:
            return media.write_av(tmp_path / name, audio, *args, **options)
        except media.MissingCodec as missing:
            pytest.skip(str(missing))

    return write
