"""The plugin is found through its entry point."""

from __future__ import annotations

from anymodal.contract.registry import load_registry


def test_entry_point_registers_the_video_modality() -> None:
    registry = load_registry()
    spec = registry.modalities["video"]
    owner = registry.owners[("modality", "video")]
    assert (owner.name, owner.distribution, owner.status) == ("video", "anymodal-video", "ok")
    assert owner.registered == {"modality": ["video"]}
    assert spec.file_kinds == (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
    assert (spec.default_encoder, spec.default_projector) == ("imagebind", "linear")
    assert (spec.placeholder, spec.flag) == ("<video>", "--video")
