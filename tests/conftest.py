"""Shared fixtures: fake installed distributions whose entry points importlib.metadata finds."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anymodal.contract.registry import set_registry


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write a plugin module plus a ``.dist-info`` folder with a real ``entry_points.txt``.

    This is what pip leaves in site-packages, so discovery goes through importlib.metadata
    exactly as for an installed plugin, without running pip.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(dist: str, module: str, source: str, *, version: str = "1.0", requires: str = "") -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        requires_line = f"Requires-Dist: {requires}\n" if requires else ""
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{requires_line}"
        )
        (info / "entry_points.txt").write_text(f"[anymodal]\n{module} = {module}\n")
        sys.modules.pop(module, None)
        return site

    return install


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """No test sees another test's registry."""
    set_registry(None)
    yield
    set_registry(None)
