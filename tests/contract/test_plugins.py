"""Plugin discovery through real entry points, isolation of broken plugins, duplicates, contract."""

from __future__ import annotations

import subprocess
import sys

import pytest

from anymodal import PluginError
from anymodal.contract.registry import load_registry

GOOD = """
import anymodal

ANYMODAL_CONTRACT = 1

def _load(path):
    return path.read_bytes()

def _preprocess(data):
    return data

@anymodal.hookimpl
def register_modalities(register):
    register(anymodal.ModalitySpec(
        name="{name}", loader=_load, preprocess=_preprocess, file_kinds=("bin",),
        default_encoder="toy",
    ))
"""


def test_entry_point_plugin_is_discovered(install_plugin):
    install_plugin("anymodal-lidar", "anymodal_lidar", GOOD.format(name="lidar"), version="0.3.1")
    registry = load_registry()
    spec = registry.modalities["lidar"]
    assert (spec.placeholder, spec.flag, spec.file_kinds) == ("<lidar>", "--lidar", (".bin",))
    record = next(p for p in registry.plugins if p.name == "anymodal_lidar")
    assert record.as_dict() == {
        "name": "anymodal_lidar",
        "distribution": "anymodal-lidar",
        "version": "0.3.1",
        "status": "ok",
        "error": None,
        "registered": {"modality": ["lidar"]},
    }


def test_a_module_passed_directly_takes_the_place_of_its_entry_point(install_plugin):
    install_plugin("anymodal-lidar", "anymodal_lidar", GOOD.format(name="lidar"), version="0.3.1")
    import anymodal_lidar  # type: ignore[import-not-found]  # written by install_plugin

    registry = load_registry(plugins=[anymodal_lidar])
    records = [p for p in registry.plugins if "lidar" in p.name]
    assert [(p.name, p.distribution, p.version, p.status) for p in records] == [
        ("anymodal_lidar", "anymodal-lidar", "0.3.1", "ok")
    ]
    assert registry.owners[("modality", "lidar")] is records[0]


def test_builtin_pieces_go_through_the_same_hooks():
    registry = load_registry(entry_points=False)
    benchmarks, builtin = registry.plugins
    assert (builtin.name, builtin.distribution, builtin.status) == ("builtin", "anymodal", "ok")
    assert set(builtin.registered["projector"]) == {"linear", "mlp", "resampler"}
    assert {"plain", "pandagpt"} <= set(builtin.registered["template"])
    assert (benchmarks.name, benchmarks.distribution, benchmarks.status) == ("benchmarks", "anymodal", "ok")
    assert "pope" in benchmarks.registered["benchmark"]


def test_plugin_that_raises_on_import_is_recorded_and_others_load(install_plugin):
    install_plugin("anymodal-broken", "anymodal_broken", "raise RuntimeError('libfoo.so missing')\n")
    install_plugin("anymodal-lidar", "anymodal_lidar", GOOD.format(name="lidar"))
    registry = load_registry()
    broken = next(p for p in registry.plugins if p.name == "anymodal_broken")
    assert broken.status == "failed"
    assert broken.distribution == "anymodal-broken"
    assert broken.error == "RuntimeError: libfoo.so missing"
    assert "lidar" in registry.modalities


def test_plugin_that_raises_while_registering_contributes_nothing(install_plugin):
    source = GOOD.format(name="sonar") + (
        "\n@anymodal.hookimpl\ndef register_encoders(register):\n    raise ValueError('bad weights path')\n"
    )
    install_plugin("anymodal-sonar", "anymodal_sonar", source)
    registry = load_registry()
    record = next(p for p in registry.plugins if p.name == "anymodal_sonar")
    assert record.status == "failed" and "bad weights path" in record.error
    assert "sonar" not in registry.modalities  # its partial registrations are discarded


def test_wrong_spec_type_names_plugin_and_hook(install_plugin):
    source = "import anymodal\nANYMODAL_CONTRACT = 1\n@anymodal.hookimpl\ndef register_bridges(register):\n"
    install_plugin("anymodal-odd", "anymodal_odd", source + "    register('hf')\n")
    record = next(p for p in load_registry().plugins if p.name == "anymodal_odd")
    assert record.error == (
        "plugin anymodal-odd 1.0: register_bridges passed str to register(), expected anymodal.BridgeSpec"
    )


def test_misspelled_hook_is_refused(install_plugin):
    source = "import anymodal\nANYMODAL_CONTRACT = 1\n@anymodal.hookimpl\ndef register_modality(register):\n"
    install_plugin("anymodal-typo", "anymodal_typo", source + "    pass\n")
    record = next(p for p in load_registry().plugins if p.name == "anymodal_typo")
    assert record.status == "failed" and "register_modality" in record.error


def test_strict_mode_reraises(install_plugin, monkeypatch):
    install_plugin("anymodal-broken", "anymodal_broken", "raise RuntimeError('boom')\n")
    monkeypatch.setenv("ANYMODAL_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"anymodal-broken 1.0 failed: RuntimeError: boom"):
        load_registry()


def test_disabled_plugins_are_skipped_by_entry_point_or_distribution(install_plugin, monkeypatch):
    install_plugin("anymodal-broken", "anymodal_broken", "raise RuntimeError('boom')\n")
    install_plugin("anymodal-lidar", "anymodal_lidar", GOOD.format(name="lidar"))
    monkeypatch.setenv("ANYMODAL_DISABLE_PLUGINS", "anymodal-broken, anymodal_lidar")
    registry = load_registry()
    statuses = {p.name: p.status for p in registry.plugins}
    assert statuses["anymodal_broken"] == statuses["anymodal_lidar"] == "disabled"
    assert "lidar" not in registry.modalities


def test_duplicate_name_is_an_error_naming_both_distributions(install_plugin):
    install_plugin("anymodal-lidar", "anymodal_lidar", GOOD.format(name="lidar"))
    install_plugin("anymodal-lidar-fork", "anymodal_lidar_fork", GOOD.format(name="lidar"), version="2.0")
    registry = load_registry()
    fork = next(p for p in registry.plugins if p.name == "anymodal_lidar_fork")
    assert fork.status == "failed"
    assert fork.error.startswith(
        "modality 'lidar' is registered by both anymodal-lidar 1.0 and anymodal-lidar-fork 2.0"
    )


def test_unknown_contract_version_says_which_anymodal_is_needed(install_plugin):
    source = GOOD.format(name="lidar").replace("ANYMODAL_CONTRACT = 1", "ANYMODAL_CONTRACT = 2")
    install_plugin("anymodal-lidar", "anymodal_lidar", source, requires="anymodal>=0.9")
    record = next(p for p in load_registry().plugins if p.name == "anymodal_lidar")
    assert record.status == "failed"
    assert "built for plugin contract 2" in record.error
    assert "speaks contract 1; it requires anymodal>=0.9" in record.error


def test_missing_contract_declaration_is_refused(install_plugin):
    source = GOOD.format(name="lidar").replace("ANYMODAL_CONTRACT = 1", "")
    install_plugin("anymodal-lidar", "anymodal_lidar", source)
    record = next(p for p in load_registry().plugins if p.name == "anymodal_lidar")
    assert record.error is not None and "does not declare ANYMODAL_CONTRACT" in record.error


def test_unknown_name_suggests_the_closest():
    registry = load_registry(entry_points=False)
    with pytest.raises(Exception, match=r"unknown projector 'resampeler' \(did you mean 'resampler'\?\)"):
        registry.get("projector", "resampeler")


def test_importing_anymodal_does_not_import_torch():
    code = (
        "import sys, anymodal, anymodal.contract.registry; anymodal.contract.registry.load_registry(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_core_is_found_through_its_own_entry_point_first_and_cannot_be_disabled(monkeypatch):
    monkeypatch.setenv("ANYMODAL_DISABLE_PLUGINS", "builtin,benchmarks,anymodal")
    registry = load_registry()
    core = registry.plugins[:2]
    assert [(p.name, p.distribution, p.status) for p in core] == [
        ("benchmarks", "anymodal", "ok"),
        ("builtin", "anymodal", "ok"),
    ]
    assert registry.owners[("projector", "linear")] is core[1]
    assert registry.owners[("benchmark", "pope")] is core[0]
    assert [p.name for p in load_registry(entry_points=False).plugins] == ["benchmarks", "builtin"]


def test_a_missing_core_entry_point_is_one_clear_plugin_error(monkeypatch):
    from anymodal.contract import registry as registry_module

    monkeypatch.setattr(registry_module, "_entry_points", list)
    registry = load_registry()
    (record,) = registry.plugins
    assert (record.name, record.status) == ("builtin", "failed")
    assert record.error is not None and "distribution's own entry point" in record.error
    assert registry.projectors == {}
    with pytest.raises(PluginError, match="pip install -e"):
        load_registry(strict=True)
