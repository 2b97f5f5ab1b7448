"""docs/serving-modalities.md's examples, run against ``anymodal serve`` on the demo model: the curl
blocks as they are written there, and examples/serve_client.py, whose output the page shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "serving-modalities.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", PAGE.read_text(), flags=re.S | re.M)


def table_answers() -> dict[str, str]:
    """The page's table: modality -> the demo model's answer, for the rows that have a sample."""
    answers = {}
    for row in PAGE.read_text().splitlines():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) == 6 and cells[3].startswith("`") and cells[3].endswith("`"):
            answers[cells[0]] = cells[5]
    return answers


def run_bash(script: str, base_url: str) -> str:
    if sys.platform != "linux":
        pytest.skip("the curl examples use GNU base64 (-w0)")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env={**os.environ, "BASE": base_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_table_has_a_row_per_demo_modality():
    assert sorted(table_answers()) == ["audio", "depth", "image", "imu", "thermal", "video"]


def test_the_curl_function_asks_about_every_modality(demo_server):
    ask_block = blocks("bash")[0]
    assert "tests/serve/test_serving_docs.py runs this block" in PAGE.read_text().split(ask_block)[0][-200:]
    replies = run_bash(ask_block, demo_server.url).splitlines()
    parts = re.findall(r"^ask (\w+) ", ask_block, flags=re.M)
    modalities = ["audio" if part == "input_audio" else part.removesuffix("_url") for part in parts]
    answers = table_answers()
    assert replies == [answers[m] for m in modalities]


def test_the_streamed_curl_ends_with_done(demo_server):
    events = run_bash(blocks("bash")[1], demo_server.url).split("\n\n")
    data = [event.removeprefix("data: ") for event in events if event.strip()]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert text == table_answers()["thermal"]
    assert len(chunks) > 3  # a role chunk, several pieces of text, the finish


def test_the_embeddings_curl_gives_one_vector_per_part(demo_server):
    body = json.loads(run_bash(blocks("bash")[2], demo_server.url))
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert [len(item["embedding"]) for item in body["data"]] == [64, 64]


def test_the_client_example_prints_what_the_page_shows(demo_server):
    shown = next(block for block in blocks("") if block.startswith("builtin:demo serves:"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "serve_client.py"), "--base-url", f"{demo_server.url}/v1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown
    streamed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "serve_client.py"),
            "--base-url",
            f"{demo_server.url}/v1",
            "--stream",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert streamed.stdout == shown
