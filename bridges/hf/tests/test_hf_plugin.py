"""The hf bridge is found through its entry point and costs nothing to import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from anymodal_hf.bridge import HFBridge

import anymodal
from anymodal.contract.registry import load_registry


def test_entry_point_registers_the_hf_bridge() -> None:
    registry = load_registry(strict=True)
    assert "hf" in registry.bridges
    owner = registry.owners[("bridge", "hf")]
    assert (owner.name, owner.distribution, owner.status) == ("hf", "anymodal-hf", "ok")
    assert owner.registered == {"bridge": ["hf"]}


def test_importing_the_plugin_imports_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, anymodal_hf.plugin\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_spec_load_returns_a_bridge(tiny_dir: Path) -> None:
    spec = load_registry().get("bridge", "hf")
    bridge = spec.load(anymodal.LLMSettings(path=str(tiny_dir)), "cpu", "float32")
    assert isinstance(bridge, HFBridge)
    assert isinstance(bridge, anymodal.Bridge)
