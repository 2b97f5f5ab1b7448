"""The plugin is found through its entry point and costs nothing to import."""

from __future__ import annotations

import subprocess
import sys

from anymodal.plugins import load_registry


def test_importing_the_plugin_imports_neither_torch_numpy_nor_decord() -> None:
    code = (
        "import sys, anymodal_video.plugin\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'decord') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_entry_point_registers_the_video_modality() -> None:
    registry = load_registry()
    spec = registry.modalities["video"]
    owner = registry.owners[("modality", "video")]
    assert (owner.name, owner.distribution, owner.status) == ("video", "anymodal-video", "ok")
    assert owner.registered == {"modality": ["video"]}
    assert spec.file_kinds == (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
    assert (spec.default_encoder, spec.default_projector) == ("imagebind", "linear")
    assert (spec.placeholder, spec.flag) == ("<video>", "--video")
