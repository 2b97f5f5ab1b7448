"""``anymodal new-plugin``, ``install`` and ``uninstall`` with real pip on real plugin projects.

They run in a scratch virtual environment that sees this one's packages through a ``.pth`` file:
pip installs into it and uninstalls from it, and the test environment is left as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from anymodal.cli import cli


def write_project(root: Path, distribution: str, module: str, source: str) -> Path:
    """A plugin distribution as its author would keep it: pyproject.toml and one module."""
    project = root / distribution
    project.mkdir()
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{distribution}"
            version = "0.1.0"

            [project.entry-points.anymodal]
            {module} = "{module}"

            [tool.setuptools]
            py-modules = ["{module}"]
            """
        )
    )
    (project / f"{module}.py").write_text(textwrap.dedent(source))
    return project


def scratch_environment(root: Path) -> Path:
    """A virtual environment of its own whose interpreter also sees this one's packages; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site_packages = next((root / "lib").glob("python3*/site-packages"))
    parent = sysconfig.get_paths()["purelib"]
    (site_packages / "parent_environment.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return root / "bin" / "python"


def anymodal(python: Path | str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(python), "-m", "anymodal", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(sys.platform == "win32", reason="the scratch environment uses the POSIX layout")
def test_a_new_plugin_installs_passes_its_tests_and_uninstalls_beside_a_broken_one(tmp_path: Path) -> None:
    python = scratch_environment(tmp_path / "env")
    lidar = tmp_path / "anymodal-lidar"
    made = CliRunner().invoke(cli, ["new-plugin", "lidar", "--output", str(lidar)])
    assert made.exit_code == 0, made.output
    broken = write_project(tmp_path, "anymodal-broken", "anymodal_broken", "import libfoo_not_here\n")
    env = {**os.environ, "ANYMODAL_HOME": str(tmp_path / "home")}
    # Offline, without build isolation: setuptools comes from this environment.
    offline = ["--no-index", "--no-build-isolation", "--no-deps"]

    installed = anymodal(python, env, "install", str(lidar), str(broken), *offline)
    assert installed.returncode == 0, installed.stderr
    assert f"running: {python} -m pip install {lidar} {broken} --no-index" in installed.stderr

    listed = anymodal(python, env, "plugins").stdout.splitlines()
    assert "anymodal-lidar 0.1.0  [lidar]  ok" in listed
    assert "    modalities: lidar" in listed and "    encoders: lidar-example" in listed
    assert "anymodal-broken 0.1.0  [anymodal_broken]  failed" in listed
    assert "--lidar FILE" in anymodal(python, env, "chat", "--help").stdout
    assert "anymodal-lidar" not in anymodal(sys.executable, env, "plugins").stdout  # this one untouched

    # The generated tests (the conformance suite among them) pass against the installed copy.
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(lidar / "tests")],
        capture_output=True, text=True, env=env, cwd=lidar, timeout=300,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:]
    summary = tests.stdout.strip().splitlines()[-1]
    assert summary.startswith("23 passed") and "failed" not in summary and "skipped" not in summary

    # With broken plugins made fatal, commands that load plugins stop; uninstall still works.
    strict = {**env, "ANYMODAL_STRICT_PLUGINS": "1"}
    assert anymodal(python, strict, "plugins").returncode == 1
    removed = anymodal(python, strict, "uninstall", "anymodal-broken")
    assert removed.returncode == 0, removed.stderr
    after = anymodal(python, strict, "plugins")
    assert after.returncode == 0, after.stderr
    assert "anymodal-lidar 0.1.0  [lidar]  ok" in after.stdout and "broken" not in after.stdout


def test_a_plugin_pip_will_not_remove_is_reported(tmp_path: Path) -> None:
    """On PYTHONPATH, outside the environment: pip says it cannot, and exits 0 all the same."""
    target = tmp_path / "site"
    broken = write_project(tmp_path, "anymodal-broken", "anymodal_broken", "import libfoo_not_here\n")
    env = {**os.environ, "PYTHONPATH": str(target), "ANYMODAL_HOME": str(tmp_path / "home")}
    offline = ["--no-index", "--no-build-isolation", "--no-deps", "--target", str(target)]
    assert anymodal(sys.executable, env, "install", str(broken), *offline).returncode == 0
    result = anymodal(sys.executable, env, "uninstall", "anymodal-broken")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: still installed after pip uninstall: anymodal-broken (at {target}) (hint: remove it "
        "there by hand, or skip it with ANYMODAL_DISABLE_PLUGINS=<plugin name>)"
    )


def test_a_failing_pip_is_one_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-plugin"
    result = anymodal(sys.executable, dict(os.environ), "install", str(missing), "--no-index")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "error: pip install failed (exit 1); its message is above (hint: check the name or path, "
        "and that pip can reach an index or the files given)"
    )


@pytest.mark.parametrize("name", ["anymodal", "Anymodal"])
def test_uninstalling_anymodal_itself_is_refused(name: str) -> None:
    result = CliRunner().invoke(cli, ["uninstall", name])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: refusing to uninstall {name}: it is anymodal itself")


def test_install_needs_a_name() -> None:
    result = CliRunner().invoke(cli, ["install"])
    assert result.exit_code == 2 and "Missing argument 'NAMES...'" in result.stderr
