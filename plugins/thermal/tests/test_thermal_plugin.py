"""The thermal plugin is found through its entry point and costs nothing to import."""

from __future__ import annotations

import subprocess
import sys

from anymodal_thermal import plugin

import anymodal
from anymodal.plugins import load_registry


def test_entry_point_registers_the_thermal_modality() -> None:
    registry = load_registry()
    spec = registry.modalities["thermal"]
    owner = registry.owners[("modality", "thermal")]
    assert (owner.distribution, owner.version, owner.status) == ("anymodal-thermal", "0.1.0", "ok")
    assert spec.file_kinds == (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
    assert (spec.default_encoder, spec.default_projector) == ("imagebind", "linear")
    assert plugin.ANYMODAL_CONTRACT == anymodal.CONTRACT_VERSION


def test_importing_the_plugin_imports_no_torch_numpy_or_pil() -> None:
    code = (
        "import sys, anymodal_thermal.plugin\n"
        "heavy = sorted(m for m in ('torch', 'PIL', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
