"""A first-party modality flag whose plugin is missing is one line naming the pip command, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from anymodal import __version__
from anymodal.cli import cli
from anymodal.cli.inputs import FIRST_PARTY_MODALITIES
from anymodal.contract.registry import PluginRecord, load_registry, set_registry

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("chat", "embed", "similarity")


def not_installed(flag: str) -> str:
    name = flag.removeprefix("--")
    return (
        f"error: {flag} needs the {name} plugin, which is not installed (hint: pip install "
        f'{FIRST_PARTY_MODALITIES[name]}, or pip install "anymodal[all]" for every first-party modality)'
    )


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ANYMODAL_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def core_only():
    """Only core's own pieces: as after `pip install anymodal anymodal-hf`, as far as flags go."""
    registry = load_registry(entry_points=False)
    set_registry(registry)
    return registry


def args_for(command: str, flag: str) -> list[str]:
    return {
        "chat": ["chat", flag, "x.png", "What shape is this?"],
        "embed": ["embed", flag, "x.png"],
        "similarity": ["similarity", flag, "a.png", flag, "b.png"],
    }[command]


def test_the_message_names_the_pip_command(runner, core_only):
    result = runner.invoke(cli, ["chat", "--image", "x.png", "What shape is this?"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: --image needs the image plugin, which is not installed (hint: pip install "
        'anymodal-image, or pip install "anymodal[all]" for every first-party modality)\n'
    )


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("modality", sorted(FIRST_PARTY_MODALITIES))
def test_every_first_party_flag_of_every_command(runner, core_only, command, modality):
    flag = f"--{modality}"
    result = runner.invoke(cli, args_for(command, flag))
    assert (result.exit_code, result.stderr) == (2, not_installed(flag) + "\n")


@pytest.mark.parametrize("args", [["--image"], ["hi", "--image"], ["--image=x.png", "hi"]])
def test_a_bare_or_joined_flag_says_the_same(runner, core_only, args):
    result = runner.invoke(cli, ["chat", *args])
    assert (result.exit_code, result.stderr) == (2, not_installed("--image") + "\n")


def test_the_missing_flag_stays_out_of_help(runner, core_only):
    result = runner.invoke(cli, ["chat", "--help"])
    assert result.exit_code == 0
    assert "--image" not in result.output and "--model" in result.output


def test_an_unknown_flag_keeps_clicks_error(runner, core_only):
    result = runner.invoke(cli, ["chat", "--lidar", "scan.pcd", "hi"])
    assert result.exit_code == 2
    assert "No such option: --lidar" in result.stderr or "No such option '--lidar'" in result.stderr
    assert "plugin" not in result.stderr


def test_one_plugin_turned_off_leaves_the_others(runner, monkeypatch):
    monkeypatch.setenv("ANYMODAL_DISABLE_PLUGINS", "anymodal-image")
    result = runner.invoke(cli, ["chat", "--image", "x.png", "What shape is this?"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --image needs the image plugin (anymodal-image {__version__}), which "
        "ANYMODAL_DISABLE_PLUGINS turns off (hint: take anymodal-image out of ANYMODAL_DISABLE_PLUGINS)\n"
    )
    shown = runner.invoke(cli, ["chat", "--help"]).output
    assert "--image" not in shown and "--audio FILE" in shown


def test_a_plugin_that_failed_to_load_says_so(runner, core_only):
    core_only.plugins.append(
        PluginRecord(
            "image", "anymodal-image", "0.1.0", "failed", "ModuleNotFoundError: No module named 'PIL'"
        )
    )
    result = runner.invoke(cli, ["embed", "--image", "x.png"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --image needs the image plugin (anymodal-image 0.1.0), which failed to load: "
        "ModuleNotFoundError: No module named 'PIL' (hint: `anymodal plugins` shows every plugin's "
        "state; reinstall with pip install --force-reinstall anymodal-image)\n"
    )


def test_the_console_script_prints_one_line_and_exits_2(tmp_path):
    """The real process: stderr is the one line, nothing else (no usage text, no traceback)."""
    turned_off = ",".join(FIRST_PARTY_MODALITIES.values())
    env = {**os.environ, "ANYMODAL_HOME": str(tmp_path / "home"), "ANYMODAL_DISABLE_PLUGINS": turned_off}
    result = subprocess.run(
        [sys.executable, "-m", "anymodal", "chat", "--speech", "x.wav", "What is said?"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --speech needs the speech plugin (anymodal-speech ")


def test_the_table_agrees_with_the_extras_and_the_plugins_folder():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    plugins = {p.parent.name: p for p in ROOT.glob("plugins/*/pyproject.toml")}
    assert set(plugins) == set(FIRST_PARTY_MODALITIES)
    for name, distribution in FIRST_PARTY_MODALITIES.items():
        project = tomllib.loads(plugins[name].read_text())["project"]
        assert (project["name"], project["version"]) == (distribution, __version__)
        assert extras[name] == [f"{distribution}=={__version__}"]
    assert extras["hf"] == [f"anymodal-hf=={__version__}"]
    every = extras["hf"] + [extras[name][0] for name in FIRST_PARTY_MODALITIES]
    assert sorted(extras["all"]) == sorted(every)
