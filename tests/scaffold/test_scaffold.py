"""``anymodal new-plugin``: names, refusals, and what it writes (tests/cli/test_install.py installs it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from anymodal.cli import cli
from anymodal.scaffold.project import TEMPLATES, create_plugin, plugin_names


def new_plugin(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["new-plugin", *args])
    return result.exit_code, result.stdout, result.stderr


def test_every_name_follows_from_the_modality_name():
    names = plugin_names("event_camera")
    assert (names.distribution, names.package, names.flag, names.encoder, names.title) == (
        "anymodal-event-camera",
        "anymodal_event_camera",
        "--event-camera",
        "event-camera-example",
        "EventCamera",
    )


def test_it_writes_a_complete_project_with_every_placeholder_filled(tmp_path: Path):
    code, out, err = new_plugin("event_camera", "-o", str(tmp_path / "p"), "--description", "DVS events")
    assert code == 0, err
    written = sorted(
        str(Path(line.removeprefix("created ")).relative_to(tmp_path / "p")) for line in out.splitlines()
    )
    assert written == [
        ".gitignore",
        "README.md",
        "anymodal_event_camera/__init__.py",
        "anymodal_event_camera/encoder.py",
        "anymodal_event_camera/example_data.py",
        "anymodal_event_camera/loader.py",
        "anymodal_event_camera/options.py",
        "anymodal_event_camera/plugin.py",
        "configs/train.yaml",
        "pyproject.toml",
        "tests/test_event_camera_conformance.py",
        "tests/test_event_camera_loader.py",
    ]
    assert len(written) == len(list(TEMPLATES.rglob("*.tmpl")))
    for file in (tmp_path / "p").rglob("*"):
        if file.is_file():
            assert "${" not in file.read_text(), file
    pyproject = (tmp_path / "p" / "pyproject.toml").read_text()
    assert '[project.entry-points.anymodal]\nevent_camera = "anymodal_event_camera.plugin"' in pyproject
    assert 'description="DVS events"' in (tmp_path / "p" / "anymodal_event_camera" / "plugin.py").read_text()
    assert "anymodal install -e './" not in err and f"anymodal install -e '{tmp_path / 'p'}[test]'" in err


def test_the_default_directory_is_the_distribution_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = new_plugin("lidar")
    assert code == 0 and (tmp_path / "anymodal-lidar" / "anymodal_lidar" / "plugin.py").is_file()
    assert "anymodal install -e './anymodal-lidar[test]'" in err


def test_the_default_description_is_generic():
    assert plugin_names("ecg").description == "ecg data as .npy arrays"
    assert plugin_names("event_camera").description == "event camera data as .npy arrays"
    assert plugin_names("ecg", "12-lead ECG").description == "12-lead ECG"


#: Words of the lidar example the scaffold once was; a plugin for another modality has none of them.
LIDAR_WORDS = re.compile(
    r"\bpoints?\b|point cloud|lidar|\[points, 4\]|intensity|x, y, z|\bscans?\b|\bcar\b", re.I
)


def written_files(project: Path) -> dict[str, str]:
    return {
        file.relative_to(project).as_posix(): file.read_text()
        for file in project.rglob("*")
        if file.is_file()
    }


def lidar_words(text: str) -> list[str]:
    # "entry point" is the packaging term (pyproject.toml's [project.entry-points.anymodal]).
    return LIDAR_WORDS.findall(re.sub(r"entry[ -]points?", "", text, flags=re.I))


def test_a_plugin_for_another_modality_says_nothing_of_point_clouds(tmp_path: Path):
    code, _, err = new_plugin("ecg", "-o", str(tmp_path / "p"))
    assert code == 0, err
    files = written_files(tmp_path / "p")
    assert len(files) == len(list(TEMPLATES.rglob("*.tmpl")))
    for name, text in files.items():
        assert not lidar_words(text), (name, lidar_words(text))
    assert not lidar_words(err), err
    assert "a sensor recording, shape `[samples, 4]`" in files["README.md"]
    assert 'description = "anymodal modality plugin: ecg data as .npy arrays"' in files["pyproject.toml"]
    assert 'description="ecg data as .npy arrays"' in files["anymodal_ecg/plugin.py"]


def test_the_readme_names_the_files_really_written_and_how_to_run_the_tests(tmp_path: Path):
    project = tmp_path / "p"
    create_plugin(plugin_names("ecg"), project)
    files = written_files(project)
    readme = files["README.md"]
    named = set(re.findall(r"[\w./-]+\.(?:py|toml|md)\b", readme))
    assert named, readme
    for name in named:
        assert (project / name).is_file(), f"README.md names {name}, which new-plugin does not write"
    tests = {name for name in files if name.startswith("tests/")}
    assert tests == {"tests/test_ecg_conformance.py", "tests/test_ecg_loader.py"}
    assert tests <= named
    commands = re.findall(r"^(pip install|pytest)(.*?)(?:  +#.*)?$", readme, re.M)
    assert ("pip install", " -e '.[test]'") in commands and ("pytest", "") in commands
    assert {("pytest", f" {name}") for name in tests} <= set(commands)
    assert "test = [" in files["pyproject.toml"]  # the extra that `-e '.[test]'` installs


#: Where an author fills in the plugin for a real sensor: (file, line the TODO comment sits above).
TODO_PLACES = [
    ("anymodal_ecg/loader.py", "def load(path: Path)"),
    ("anymodal_ecg/loader.py", "def preprocess(array"),
    ("anymodal_ecg/options.py", "CHANNELS = 4"),
    ("anymodal_ecg/options.py", "class ExampleEncoderOptions:"),
    ("anymodal_ecg/encoder.py", "class ExampleEncoder(nn.Module):"),
    ("anymodal_ecg/encoder.py", "self.geometry = anymodal.EncoderGeometry("),
    ("anymodal_ecg/plugin.py", 'FILE_KINDS = ("npy", "npz", "csv", "tsv")'),
    ("anymodal_ecg/plugin.py", "def preprocess(array"),
    ("anymodal_ecg/plugin.py", "def emits(options"),
    ("anymodal_ecg/plugin.py", 'description="ecg data as .npy arrays"'),
    ("anymodal_ecg/plugin.py", 'description="example encoder'),
    ("anymodal_ecg/example_data.py", "def main("),
    ("configs/train.yaml", "weights: null"),
    ("pyproject.toml", "[project]"),
    ("pyproject.toml", "dependencies = ["),
]


def test_todo_comments_mark_exactly_what_an_author_fills_in(tmp_path: Path):
    project = tmp_path / "p"
    create_plugin(plugin_names("ecg"), project)
    files = written_files(project)
    todos = {
        name: re.findall(r"^ *# TODO: (.*(?:\n *# (?!TODO).*)*)", text, re.M) for name, text in files.items()
    }
    assert {name for name, found in todos.items() if found} == {name for name, _ in TODO_PLACES}
    assert sum(len(found) for found in todos.values()) == len(TODO_PLACES)
    for name, found in todos.items():
        for todo in found:
            assert len(todo.split()) >= 8, f"{name}: a TODO that does not say what to decide: {todo!r}"
    for name, anchor in TODO_PLACES:
        lines = files[name].splitlines()
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(anchor))
        above = []
        while at > 0 and lines[at - 1].lstrip().startswith(("#", "@")):
            at -= 1
            above.append(lines[at])
        assert any("# TODO: " in line for line in above), f"no TODO above {anchor!r} in {name}"
    # Nothing else says TODO as a marker; the README points at them.
    assert "`grep -rn TODO .`" in files["README.md"]


def test_the_next_steps_are_commands_for_this_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = new_plugin("ecg")
    assert code == 0, err
    steps = err.split("next:\n", 1)[1].splitlines()
    assert steps[0].startswith("  anymodal install -e './anymodal-ecg[test]'   # ")
    assert steps[1].startswith(f"  cd ./anymodal-ecg && {sys.executable} -m pytest   # ")
    assert "tests/test_ecg_conformance.py, tests/test_ecg_loader.py" in steps[1]
    assert steps[2].startswith("  grep -rn TODO ./anymodal-ecg   # ")
    untrained = steps.index(
        "then try it untrained on the built-in demo model (chat warns that its answers are noise):"
    )
    assert (
        steps[untrained + 1]
        == "  anymodal chat --set 'model.modalities.ecg={}' --ecg FILE.npy 'What does this show?'"
    )
    assert steps[-3] == f"  {sys.executable} -m anymodal_ecg.example_data data --pictures pictures"
    assert steps[-2] == (
        "  anymodal train ./anymodal-ecg/configs/train.yaml train.data.train=data/train.jsonl"
        " train.output_dir=runs/ecg"
    )
    assert (
        steps[-1] == "  anymodal chat --model runs/ecg --ecg data/recordings/00399.npy 'What shape is this?'"
    )
    for name in ("tests/test_ecg_conformance.py", "tests/test_ecg_loader.py", "README.md"):
        assert (tmp_path / "anymodal-ecg" / name).is_file()


def test_a_plugin_for_another_modality_passes_its_own_tests_as_written(tmp_path: Path):
    project = tmp_path / "anymodal-ecg"
    create_plugin(plugin_names("ecg"), project)
    env = {**os.environ, "PYTHONPATH": str(project)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    # Not installed here, so only the entry-point check skips (tests/cli/test_install.py installs one).
    assert result.stdout.strip().splitlines()[-1].startswith("22 passed, 1 skipped")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Lidar"], "error: 'Lidar' cannot name a modality"),
        (["3d"], "error: '3d' cannot name a modality"),
        (["lid-ar"], "error: 'lid-ar' cannot name a modality"),
        (["class"], "error: 'class' cannot name a modality"),
        (["lidar", "--description", 'say "hi"'], "error: the description cannot hold quotes"),
        (["image"], "error: modality 'image' is already registered by anymodal-image"),
    ],
)
def test_bad_names_are_refused_before_anything_is_written(tmp_path: Path, args: list[str], message: str):
    code, _, err = new_plugin(*args, "-o", str(tmp_path / "out"))
    assert code == 2 and err.startswith(message), err
    assert not (tmp_path / "out").exists()


def test_an_existing_directory_is_left_alone(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    code, _, err = new_plugin("lidar", "-o", str(tmp_path))
    assert code == 2 and "already exists and is not an empty directory" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_worked_example_in_the_plugin_guide_passes_the_conformance_suite(tmp_path: Path):
    """docs/plugins.md turns the scaffold into a KITTI .bin reader: its code, applied as the guide
    says, passes the generated tests, conformance suite included."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    loader_code = re.search(r"```python\n(BYTES_PER_POINT = .*?)```", guide, re.S)
    corrupt_line = re.search(r"^ +(corrupt_bytes = .*)$", guide, re.M)
    assert loader_code and corrupt_line
    project = tmp_path / "anymodal-lidar"
    create_plugin(plugin_names("lidar"), project)
    loader = project / "anymodal_lidar" / "loader.py"
    source = loader.read_text()
    start, end = source.index("def load("), source.index("def preprocess(")
    loader.write_text(f"{source[:start]}\n{loader_code.group(1)}\n\n{source[end:]}")
    edit(project / "anymodal_lidar" / "plugin.py", '"tsv")', '"tsv", "bin")')
    edit(
        project / "tests" / "test_lidar_conformance.py",
        'plugin = "anymodal_lidar.plugin"',
        f'plugin = "anymodal_lidar.plugin"\n    {corrupt_line.group(1)}',
    )
    env = {**os.environ, "PYTHONPATH": str(project)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    # Not installed here, so only the entry-point check skips.
    assert result.stdout.strip().splitlines()[-1].startswith("22 passed, 1 skipped")
    scan = tmp_path / "000017.bin"
    np.random.default_rng(0).standard_normal((500, 4)).astype("<f4").tofile(scan)
    check = f"import pathlib, anymodal_lidar.loader as m; print(m.load(pathlib.Path({str(scan)!r})).shape)"
    shape = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert shape.stdout.strip() == "(500, 4)", shape.stderr


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert old in text, f"{old!r} not in {file}"
    file.write_text(text.replace(old, new, 1))


def test_the_readme_teaches_with_the_guides_own_commands(tmp_path: Path):
    """The README's "Teach the demo model" commands, for a plugin named as the guide's, are among
    those tests/scaffold/test_guide.py runs from docs/plugins.md, so they cannot drift either."""
    from tests.scaffold.test_guide import WALK, guide_steps

    create_plugin(plugin_names("lidar"), tmp_path / "p")
    readme = (tmp_path / "p" / "README.md").read_text()
    block = re.search(r"## Teach the demo model.*?```bash\n(.*?)```", readme, re.S)
    assert block, readme
    commands = [
        " ".join(line.split())
        for line in block.group(1).replace("\\\n", " ").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    guide = {" ".join(step.text.split()) for step in guide_steps(WALK) if step.language == "bash"}
    assert len(commands) >= 8 and [command for command in commands if command not in guide] == []
