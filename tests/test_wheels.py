"""The built wheels work without the source tree (``make dist-check``; 1-2 minutes on 2 cores).

The wheels of every distribution are built into a temporary folder and installed into a fresh
virtual environment outside the repository: first their third-party requirements (read from the
wheels' metadata) from the package index, under constraints.txt; then ``anymodal[all]`` with
``--no-index``, so anymodal's own distributions can come only from the built wheels, never from a
same-named package on an index. Every command runs from a temporary folder, away from the sources.

The tests share that one environment and run in file order: the last one uninstalls the plugins.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from anymodal import __version__
from anymodal.cli.inputs import FIRST_PARTY_MODALITIES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
OWN = ["anymodal", "anymodal-hf", *FIRST_PARTY_MODALITIES.values()]


def _load_dist_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("anymodal_dist_script", ROOT / "scripts" / "dist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dist = _load_dist_script()


class Env:
    """A virtual environment outside the source tree, and a folder outside it to run commands in."""

    def __init__(self, venv: Path, workdir: Path) -> None:
        self.venv = venv
        self.workdir = workdir
        self.bin = venv / "bin"
        self.environ = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not key.startswith("ANYMODAL_")
        }
        self.environ["PATH"] = f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"
        self.environ["ANYMODAL_HOME"] = str(workdir / "anymodal-home")

    def run(self, args: Sequence[str | Path], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(arg) for arg in args],
            capture_output=True,
            text=True,
            cwd=self.workdir,
            env=self.environ,
            timeout=900,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{' '.join(map(str, args))} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
        return result

    def pip(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self.run([self.bin / "python", "-m", "pip", "--disable-pip-version-check", *args])


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    built = dist.build(tmp_path_factory.mktemp("dist"))
    names = {wheel.name.split("-")[0].replace("_", "-") for wheel in built}
    assert names == set(OWN)
    return built


@pytest.fixture(scope="module")
def env(wheels: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Env:
    where = tmp_path_factory.mktemp("wheel-check")
    assert ROOT not in where.parents
    workdir = where / "work"
    workdir.mkdir()
    environment = Env(where / "venv", workdir)
    environment.run([sys.executable, "-m", "venv", environment.venv])
    requirements = dist.third_party_requirements(wheels, extras=["serve"])
    assert not any(r.lower().startswith("anymodal") for r in requirements)
    # --no-compile: installing skips byte-compiling torch and transformers (a third of the time).
    environment.pip("install", "--quiet", "--no-compile", "-c", ROOT / "constraints.txt", *requirements)
    folder = wheels[0].parent
    environment.pip("install", "--quiet", "--no-index", "--find-links", folder, "anymodal[all,serve]")
    return environment


def test_every_distribution_comes_from_its_wheel(env):
    listed = env.pip("list", "--format", "freeze", "--exclude-editable").stdout.splitlines()
    for name in OWN:
        assert f"{name}=={__version__}" in listed
    modules = ["anymodal", "anymodal_hf", *(d.replace("-", "_") for d in FIRST_PARTY_MODALITIES.values())]
    code = "import importlib, sys\nfor name in sys.argv[1:]: print(importlib.import_module(name).__file__)"
    files = env.run([env.bin / "python", "-c", code, *modules]).stdout.split()
    assert len(files) == len(modules)
    assert all(Path(f).resolve().is_relative_to(env.venv.resolve()) for f in files), files


def test_plugins_lists_the_bridge_and_every_plugin_ok(env):
    lines = env.run([env.bin / "anymodal", "plugins"]).stdout.splitlines()
    for name in OWN:
        line = next((line for line in lines if line.startswith(f"{name} {__version__}  [")), None)
        assert line is not None and line.endswith("]  ok"), lines


def test_chat_about_the_red_circle(env):
    image = (ROOT / "examples" / "red_circle.png").resolve()
    result = env.run([env.bin / "anymodal", "chat", "--image", image, "What shape is this?"])
    assert "circle" in result.stdout.lower(), result.stdout


def test_batch_answers_the_example_file(env):
    """``anymodal batch examples/batch.jsonl`` from the installed wheels, in a copy of examples/."""
    shutil.copytree(ROOT / "examples", env.workdir / "examples", dirs_exist_ok=True)
    result = env.run([env.bin / "anymodal", "batch", "examples/batch.jsonl", "-o", "out.jsonl", "--json"])
    summary = json.loads(result.stdout)
    lines = [json.loads(line) for line in (env.workdir / "out.jsonl").read_text().splitlines()]
    assert summary["failed"] == 0 and summary["succeeded"] == len(lines) > 0
    bodies = {line["custom_id"]: line["response"]["body"] for line in lines}
    assert "circle" in bodies["circle"]["choices"][0]["message"]["content"]


def test_serve_answers_and_serves_its_page(env):
    """``anymodal serve`` from the installed wheels: the chat page's files and one answer."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [env.bin / "anymodal", "serve", "--port", str(port)],
        cwd=env.workdir,
        env=env.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "anymodal serve did not start"
            time.sleep(0.2)
        with urllib.request.urlopen(f"{base}/", timeout=10) as response:
            page = response.read().decode()
        assert "<html" in page.lower()
        image = base64.b64encode((ROOT / "examples" / "red_circle.png").read_bytes()).decode()
        body = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
                        {"type": "text", "text": "What shape is this?"},
                    ],
                }
            ]
        }
        request = urllib.request.Request(
            f"{base}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            reply = json.load(response)["choices"][0]["message"]["content"]
        assert "circle" in reply
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_without_the_plugins_a_flag_names_the_pip_command(env):
    """Only anymodal and anymodal-hf left: --image is one line naming the pip command, exit 2."""
    env.pip("uninstall", "--quiet", "--yes", *FIRST_PARTY_MODALITIES.values())
    listed = env.pip("list", "--format", "freeze").stdout.lower()
    assert {line.split("==")[0] for line in listed.splitlines() if line.startswith("anymodal")} == {
        "anymodal",
        "anymodal-hf",
    }
    result = env.run([env.bin / "anymodal", "chat", "--image", "x.png", "What shape is this?"], check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: --image needs the image plugin, which is not installed (hint: pip install "
        'anymodal-image, or pip install "anymodal[all]" for every first-party modality)\n'
    )
