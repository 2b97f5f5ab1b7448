"""The built distribution contains every subpackage and the shipped presets."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "anymodal").rglob("__init__.py")
    }
    assert on_disk | {"anymodal.configs"} == listed


def test_presets_are_packaged_as_anymodal_configs():
    from importlib.resources import files

    names = {entry.name for entry in files("anymodal.configs").iterdir()}
    assert {"demo.yaml", "hf-llm.yaml", "train-stage1.yaml", "train-stage2.yaml"} <= names


def test_package_data_covers_the_plugin_templates():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = ROOT / "anymodal" / "scaffold"
    templates = {p for p in (package / "template").rglob("*") if p.is_file()}
    covered = {p for pattern in patterns["anymodal.scaffold"] for p in package.glob(pattern)}
    assert templates and templates <= covered, sorted(str(p) for p in templates - covered)
