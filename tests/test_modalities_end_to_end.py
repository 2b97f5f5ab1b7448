"""All six first-party modalities through a small ImageBind, the runtime and a tiny LLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from PIL import Image

from anymodal.cli import cli
from anymodal.config import load_config
from anymodal.contract.registry import load_registry, set_registry
from anymodal.runtime.chat import ChatSession, ChatTurn
from anymodal.testing import TINY_IMAGEBIND, save_tiny_llm
from anymodal.testing.media import write_video

MODALITIES = ("image", "video", "audio", "depth", "thermal", "imu")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    files = {
        name: root / f"{name}.{ext}"
        for name, ext in zip(MODALITIES, ("png", "mp4", "wav", "png", "png", "npy"), strict=True)
    }
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(files["image"])
    write_video(files["video"], frames=25)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 16000)
    soundfile.write(files["audio"], tone.astype(np.float32), 16000)
    Image.fromarray(rng.integers(500, 5000, (60, 80), dtype=np.uint16)).save(files["depth"])
    Image.fromarray(rng.integers(0, 255, (60, 80), dtype=np.uint8)).save(files["thermal"])
    np.save(files["imu"], rng.standard_normal((6, 2400)).astype(np.float32))
    return files


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model")
    save_tiny_llm(root / "llm")
    encoder = json.dumps({"options": {"preset": "huge", "config": TINY_IMAGEBIND}})
    blocks = "".join(f"    {name}: {{encoder: {encoder}}}\n" for name in MODALITIES)
    file = root / "anymodal.yaml"
    file.write_text(f"model:\n  llm: {{path: ./llm}}\n  template: plain\n  modalities:\n{blocks}")
    return file


def test_one_turn_with_all_six_modalities(config_file, media):
    registry = load_registry()
    assert set(MODALITIES) <= set(registry.modalities)
    session = ChatSession.from_config(load_config(config_file, registry=registry).config, registry)
    shapes = {}
    for name in MODALITIES:
        shapes[name] = tuple(session.attach(name, media[name]).tensor.shape)
    assert shapes == {
        "image": (3, 224, 224),
        "video": (15, 3, 2, 224, 224),
        "audio": (3, 1, 128, 204),
        "depth": (1, 224, 224),
        "thermal": (1, 224, 224),
        "imu": (6, 2000),
    }
    pieces = session.ask("What do all of these show?")
    reply = "".join(pieces)
    turn = session.history[-1]
    assert turn.reply == reply and not turn.interrupted
    assert session.encoded_count == 6
    prompt = session.processor.process(session._conversation(ChatTurn("and next?", [])))
    assert [slot.modality for slot in prompt.slots] == list(MODALITIES)  # one tagged span each, in order
    for name in MODALITIES:
        assert f"<{name}>" in prompt.text and f"</{name}>" in prompt.text


def test_embed_writes_one_vector_per_file_in_the_shared_space(config_file, media, tmp_path):
    set_registry(None)
    args = ["embed", "--model", str(config_file.parent), "--output", str(tmp_path / "e.npy")]
    for name in MODALITIES:
        args += [f"--{name}", str(media[name])]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    vectors = np.load(tmp_path / "e.npy")
    assert vectors.shape == (6, TINY_IMAGEBIND["out_embed_dim"])
    norms = np.linalg.norm(vectors, axis=1)
    # post-processed: L2-normalised, then ImageBind's fixed scales (audio 20, depth 5, thermal 10, imu 5);
    # clip-averaged video and audio have norm <= their scale
    assert norms[0] == pytest.approx(1.0, abs=1e-5)
    assert norms[3] == pytest.approx(5.0, abs=1e-4) and norms[4] == pytest.approx(10.0, abs=1e-4)
    assert norms[5] == pytest.approx(5.0, abs=1e-4)
    assert 0 < norms[1] <= 1.0 + 1e-5 and 0 < norms[2] <= 20.0 + 1e-4
