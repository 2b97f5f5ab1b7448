"""The CLI through click's test runner: exit codes, one-line errors, generated flags, the chat loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from anymodal.cli import cli
from anymodal.contract.registry import load_registry, set_registry
from anymodal.testing import save_scripted_llm, toy

REPLY = "The toy looks calm."


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path / "home"))


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def with_toy(use_plugins):
    use_plugins(toy)


@pytest.fixture(scope="module")
def scripted_model(tmp_path_factory) -> Path:
    """A saved anymodal model (anymodal.yaml beside an LLM) whose greedy reply is REPLY."""
    directory = tmp_path_factory.mktemp("scripted")
    save_scripted_llm(directory / "llm", REPLY)
    (directory / "anymodal.yaml").write_text(
        "model:\n  llm: {path: ./llm}\n  template: plain\n  modalities:\n    toy: {}\n"
        "generation: {max_new_tokens: 20}\n"
    )
    return directory


@pytest.fixture
def toy_file(tmp_path) -> Path:
    path = tmp_path / "reading.npy"
    np.save(path, np.ones((4, 8), dtype=np.float32))
    return path


def test_help_lists_commands(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("chat", "plugins", "config"):
        assert command in result.output


def test_chat_flags_come_from_the_registry(runner, with_toy):
    result = runner.invoke(cli, ["chat", "--help"])
    assert result.exit_code == 0
    assert "--toy FILE" in result.output and "test modality: 2-D .npy arrays (.npy)" in result.output
    set_registry(load_registry(entry_points=False))
    assert "--toy" not in runner.invoke(cli, ["chat", "--help"]).output


def test_chat_answers_once_about_a_file(runner, with_toy, scripted_model, toy_file):
    result = runner.invoke(
        cli, ["chat", "--model", str(scripted_model), "--toy", str(toy_file), "What is it?"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == REPLY


def test_the_default_model_is_the_demo_and_says_what_it_knows(runner):
    result = runner.invoke(cli, ["chat", "--max-new-tokens", "4", "Hello"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("This is anymodal's built-in demo model. It knows only anymodal")
    assert result.stdout.strip()


def test_plugins_json_lists_first_party_pieces(runner):
    result = runner.invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0
    records = {record["distribution"]: record for record in json.loads(result.stdout)}
    assert records["anymodal"]["registered"]["projector"] == ["linear", "mlp", "resampler"]
    assert records["anymodal-hf"]["registered"] == {"bridge": ["hf"]}
    assert all(record["status"] == "ok" for record in records.values())


def test_plugins_table_names_what_each_registered(runner):
    lines = runner.invoke(cli, ["plugins"]).stdout.splitlines()
    image = lines.index(next(line for line in lines if line.startswith("anymodal-image ")))
    assert lines[image].endswith("[image]  ok") and lines[image + 1] == "    modalities: image"
    assert "    projectors: linear, mlp, resampler" in lines


def test_broken_plugin_is_shown_failed_while_commands_keep_working(runner, install_plugin):
    install_plugin("anymodal-broken", "anymodal_broken", "import torch_that_does_not_exist\n")
    result = runner.invoke(cli, ["plugins", "--json"])
    broken = next(r for r in json.loads(result.stdout) if r["distribution"] == "anymodal-broken")
    assert broken["status"] == "failed"
    assert broken["error"] == "ModuleNotFoundError: No module named 'torch_that_does_not_exist'"
    assert runner.invoke(cli, ["--help"]).exit_code == 0
    chat = runner.invoke(cli, ["chat", "--max-new-tokens", "2", "hi"])
    assert chat.exit_code == 0, chat.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["chat", "--model", "defualt", "hi"],
            2,
            "error: unknown preset 'defualt' (did you mean 'default'?)",
        ),
        (["chat", "--set", "generation.max_new_token=3", "hi"], 2, "did you mean 'max_new_tokens'?"),
        (["chat", "--set", "nonsense", "hi"], 2, "nonsense"),
        (
            ["chat", "--toy", "x.npy", "hi"],
            2,
            "was not built with the toy modality (it accepts: audio, depth, image, imu, thermal, video)",
        ),
        (["config", "validate", "missing.yaml"], 2, "error: config file not found"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(runner, with_toy, args, code, message):
    result = runner.invoke(cli, args)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_file_is_exit_1_and_debug_shows_the_traceback(runner, with_toy, scripted_model, tmp_path):
    missing = tmp_path / "nowhere.npy"
    result = runner.invoke(cli, ["chat", "--model", str(scripted_model), "--toy", str(missing), "hi"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: toy file not found: {missing} (hint: check the path)"
    debug = runner.invoke(
        cli, ["--debug", "chat", "--model", str(scripted_model), "--toy", str(missing), "hi"]
    )
    assert debug.exit_code == 1 and "Traceback" in debug.stderr


def test_malformed_yaml_names_the_file(runner, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  llm: [unclosed\n")
    result = runner.invoke(cli, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert str(bad) in result.stderr and "Traceback" not in result.output


def test_config_show_and_validate(runner):
    shown = runner.invoke(cli, ["config", "show", "generation.max_new_tokens=7"])
    assert shown.exit_code == 0 and "max_new_tokens: 7" in shown.stdout
    assert runner.invoke(cli, ["config", "validate"]).stdout.strip() == "ok: builtin:demo is valid"


def test_interactive_chat_survives_errors_and_keeps_history(
    runner, with_toy, scripted_model, toy_file, tmp_path
):
    script = "\n".join(
        [
            "hello",
            f"/toy {tmp_path / 'missing.npy'}",  # an error: the chat goes on
            f"/toy {toy_file}",
            "and this?",
            "/nope",  # unknown command: an error, the chat goes on
            "/history",
            "/reset",
            "/history",
            "/quit",
        ]
    )
    result = runner.invoke(cli, ["chat", "--model", str(scripted_model)], input=script + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count(REPLY) == 4  # two replies, each shown again once by /history
    assert "you: hello" in result.stdout
    assert "you [toy: reading.npy]: and this?" in result.stdout
    assert "error: toy file not found" in result.stderr
    assert "error: unknown command /nope" in result.stderr
    assert "(conversation cleared)" in result.stderr


def test_a_piped_script_reads_as_a_transcript(scripted_model, tmp_path):
    """A real pipe (click's test runner echoes input as a terminal would, so it cannot show this)."""
    command = ["chat", "--model", str(scripted_model / "llm"), "--set", "model.template=plain"]
    result = subprocess.run(
        [sys.executable, "-m", "anymodal", *command],
        input="hello\n/reset\n",
        capture_output=True,
        text=True,
        env={**os.environ, "ANYMODAL_HOME": str(tmp_path / "home")},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # Each line shows after its prompt, as if typed; no "type a message" banner for nobody.
    assert result.stderr.splitlines() == ["you> hello", "you> /reset", "(conversation cleared)", "you> "]
    assert result.stdout == REPLY + "\n"


def test_ctrl_c_stops_a_reply_not_the_chat(runner, with_toy, scripted_model, monkeypatch):
    from anymodal.runtime.chat import ChatSession

    real_ask = ChatSession.ask
    calls = []

    def interrupted_once(self, text):
        pieces = real_ask(self, text)
        if calls:
            return pieces
        calls.append(text)

        def stream():
            yield next(pieces)
            raise KeyboardInterrupt

        return stream()

    monkeypatch.setattr(ChatSession, "ask", interrupted_once)
    result = runner.invoke(cli, ["chat", "--model", str(scripted_model)], input="first\nsecond\n/history\n")
    assert result.exit_code == 0, result.output
    assert "[reply stopped]" in result.stderr
    assert f"model: {REPLY}" in result.stdout  # the second turn answered in full
    assert "you: first" in result.stdout and "you: second" in result.stdout


def test_a_model_with_untrained_parts_is_announced_in_one_warning_line(capsys):
    from anymodal.cli.notes import show_model_notes
    from anymodal.config import load_config
    from anymodal.testing import toy

    registry = load_registry(plugins=[toy])
    show_model_notes(load_config(None, ["model.modalities.toy={}"], registry=registry))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: untrained, so its answers are noise until trained: toy encoder (toy-encoder), "
        "toy projector (linear) (no weights file; a fixed seed makes them the same on every run; "
        "see docs/training.md)"
    ]
    show_model_notes(load_config(None, registry=registry))
    assert "warning:" not in capsys.readouterr().err  # the shipped demo model is trained throughout


def test_an_input_given_as_an_embedding_file_goes_with_the_message(
    runner, with_toy, scripted_model, tmp_path
):
    import torch

    pooled = tmp_path / "reading.pt"
    torch.save(torch.zeros(16), pooled)
    result = runner.invoke(
        cli, ["chat", "--model", str(scripted_model), "--embedding", f"toy={pooled}", "What is it?"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == REPLY
    script = f"/embedding toy {pooled}\nWhat is it?\n/history\n"
    chat = runner.invoke(cli, ["chat", "--model", str(scripted_model)], input=script)
    assert chat.exit_code == 0, chat.output
    assert f"(attached toy embedding {pooled}; it goes with your next message)" in chat.stderr
    assert "you [toy: reading.pt]: What is it?" in chat.stdout


@pytest.mark.parametrize(
    ("argument", "code", "message"),
    [
        ("toy", 2, "error: --embedding 'toy': expected MODALITY=FILE"),
        ("toy=missing.pt", 1, "error: toy embedding file not found: missing.pt"),
        ("toy=reading.npy", 1, "error: toy embedding does not accept .npy: reading.npy"),
        ("image=x.pt", 2, "error: the model"),
    ],
)
def test_a_bad_embedding_argument_is_one_line(
    runner, with_toy, scripted_model, toy_file, argument, code, message
):
    os.chdir(toy_file.parent)
    result = runner.invoke(cli, ["chat", "--model", str(scripted_model), "--embedding", argument, "hi"])
    assert result.exit_code == code, result.output
    assert result.stderr.strip().splitlines()[-1].startswith(message)
