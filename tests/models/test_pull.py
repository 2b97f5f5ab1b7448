"""``anymodal pull``: fetch, verify against the source, record, convert; offline and corrupt cases.

The network is replaced by a fetcher serving files the test wrote in the released formats (a
toy-size ImageBind checkpoint and PandaGPT delta); everything after the bytes arrive is real.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from anymodal.cli import cli
from anymodal.config import load_config
from anymodal.config.model_files import check_model_files
from anymodal.contract.errors import AnymodalError, ModelLoadError, UsageError
from anymodal.contract.registry import load_registry
from anymodal.models.pull import MANIFEST, Expected, NetworkFetcher, Remote, pull, recipe_for, verify
from anymodal.testing import TINY_IMAGEBIND, save_tiny_imagebind
from anymodal.testing.pandagpt import save_llama_1, save_pandagpt_delta


class FakeSource:
    """Serves bytes by source URL, saying the size and SHA-256 the hub would (``lie`` corrupts
    what it says for one file); counts fetches; ``online`` False makes every host unreachable."""

    def __init__(self, files: dict[str, bytes], online: bool = True, lie: str | None = None) -> None:
        self.files, self.online, self.lie, self.fetched = files, online, lie, []

    def reachable(self, remote: Remote) -> bool:
        return self.online

    def fetch(self, remote: Remote, destination: Path) -> Expected:
        data = self.files[remote.source]
        destination.write_bytes(data)
        self.fetched.append(remote.source)
        digest = hashlib.sha256(data).hexdigest()
        if remote.source == self.lie:
            digest = "0" * 64
        return Expected(len(data), digest if remote.repo else None)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("released")
    return {
        "imagebind": save_tiny_imagebind(root / "imagebind_huge.pth"),
        "delta": save_pandagpt_delta(root / "pytorch_model.pt"),
        "vicuna": save_llama_1(root / "vicuna-7b-v0"),
    }


def source(released: dict[str, Path], **options: object) -> FakeSource:
    recipe = recipe_for("pandagpt-7b")
    files = {
        recipe.files[0].source: released["imagebind"].read_bytes(),
        recipe.files[1].source: released["delta"].read_bytes(),
    }
    return FakeSource(files, **options)  # type: ignore[arg-type]


def test_pull_fetches_verifies_records_and_converts(released, tmp_path, monkeypatch):
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path))
    weights = tmp_path / "weights"
    fake = source(released)
    missing = pull(recipe_for("pandagpt-7b"), weights, fake, llm=released["vicuna"], log=lambda _: None)
    assert missing == []
    assert fake.fetched == [
        "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
        "https://huggingface.co/openllmplayground/pandagpt_7b_max_len_1024/resolve/main/pytorch_model.pt",
    ]
    manifest = json.loads((weights / MANIFEST).read_text())
    delta = "downloads/pandagpt_7b_max_len_1024/pytorch_model.pt"
    assert manifest[delta]["sha256"] == hashlib.sha256(released["delta"].read_bytes()).hexdigest()
    assert manifest["imagebind_huge.pth"]["size"] == released["imagebind"].stat().st_size
    assert (weights / "vicuna-7b-v0").resolve() == released["vicuna"].resolve()
    assert not list(weights.rglob("*.part"))
    # The preset now finds every file it names.
    check_model_files(load_config("pandagpt-7b", registry=load_registry()).config.model)
    # A second pull fetches nothing.
    again = source(released)
    logged: list[str] = []
    assert pull(recipe_for("pandagpt-7b"), weights, again, log=logged.append) == []
    assert (
        again.fetched == []
        and logged[0] == f"have {weights / 'imagebind_huge.pth'} (as recorded in {MANIFEST})"
    )
    assert verify(recipe_for("pandagpt-7b"), weights) == []
    with (weights / delta).open("r+b") as file:
        file.seek(100)
        file.write(b"\x00\x01")
    assert verify(recipe_for("pandagpt-7b"), weights) == [
        f"{weights / delta}: differs from what was pulled (size or SHA-256); delete it and pull again"
    ]


def test_a_download_that_does_not_match_the_hub_is_refused(released, tmp_path):
    recipe = recipe_for("pandagpt-7b")
    fake = source(released, lie=recipe.files[1].source)
    with pytest.raises(ModelLoadError, match=r"the download of pytorch_model\.pt is corrupt: SHA-256 "):
        pull(recipe, tmp_path, fake, log=lambda _: None)
    assert not (tmp_path / recipe.delta).exists() and not list(tmp_path.rglob("*.part"))
    assert list(json.loads((tmp_path / MANIFEST).read_text())) == ["imagebind_huge.pth"]


def test_offline_lists_every_file_then_takes_copies_placed_by_hand(released, tmp_path):
    recipe = recipe_for("pandagpt-7b")
    offline = source(released, online=False)
    with pytest.raises(AnymodalError) as caught:
        pull(recipe, tmp_path, offline, log=lambda _: None)
    assert str(caught.value).startswith(
        "cannot reach dl.fbaipublicfiles.com, huggingface.co to fetch: "
        f"https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth -> {tmp_path / 'imagebind_huge.pth'}; "
        "https://huggingface.co/openllmplayground/pandagpt_7b_max_len_1024/resolve/main/pytorch_model.pt -> "
        f"{tmp_path / recipe.delta} (hint: on a machine with network"
    )
    (tmp_path / recipe.delta).parent.mkdir(parents=True)
    (tmp_path / recipe.delta).write_bytes(released["delta"].read_bytes())
    (tmp_path / "imagebind_huge.pth").write_bytes(released["imagebind"].read_bytes())
    missing = pull(recipe, tmp_path, offline, log=lambda _: None)
    assert offline.fetched == [] and (tmp_path / "pandagpt-7b" / "anymodal.yaml").is_file()
    assert json.loads((tmp_path / MANIFEST).read_text())["imagebind_huge.pth"]["source"] == "placed by hand"
    assert missing == [
        f"{tmp_path / 'vicuna-7b-v0'}: Vicuna v0 7B is LLaMA-1 7B plus lmsys/vicuna-7b-delta-v0, merged with "
        "FastChat 0.1.10's apply_delta; give the merged directory with --llm"
    ]


def test_release_variants_and_unknown_presets():
    assert recipe_for("pandagpt-13b", 256).files[1].repo == "openllmplayground/pandagpt_13b_max_len_256"
    assert recipe_for("pandagpt-13b").files[1].repo == "openllmplayground/pandagpt_13b_max_len_400"
    with pytest.raises(UsageError, match="released with max_len 1024 and 512, not 300"):
        recipe_for("pandagpt-7b", 300)
    with pytest.raises(UsageError, match="did you mean 'pandagpt-7b'"):
        recipe_for("pandagpt7b")


def test_the_network_fetcher_streams_a_url_and_reports_its_length(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "weights.bin").write_bytes(b"x" * 5000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/weights.bin"
        expected = NetworkFetcher().fetch(Remote("weights.bin", url=url), tmp_path / "weights.bin.part")
    finally:
        server.shutdown()
    assert expected == Expected(5000, None) and (tmp_path / "weights.bin.part").read_bytes() == b"x" * 5000
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not NetworkFetcher().reachable(recipe_for("pandagpt-7b").files[1])


def test_imagebind_huge_alone_is_pulled_and_embeds_through_its_preset(released, tmp_path, monkeypatch):
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path))
    weights = tmp_path / "weights"
    fake = source(released)
    assert pull(recipe_for("imagebind-huge"), weights, fake, log=lambda _: None) == []
    assert fake.fetched == ["https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"]
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    tiny = ["--set", f"model.modalities.image.encoder.options.config={json.dumps(TINY_IMAGEBIND)}"]
    runner = CliRunner()
    preset = runner.invoke(cli, ["embed", "--model", "imagebind-huge", *tiny, "--image", str(image)])
    explicit = runner.invoke(
        cli,
        [
            "embed",
            *tiny,
            "--weights",
            str(released["imagebind"]),
            "--model",
            "imagebind-huge",
            "--image",
            str(image),
        ],
    )
    assert preset.exit_code == 0, preset.output
    assert json.loads(preset.stdout) == json.loads(explicit.stdout)
    assert len(json.loads(preset.stdout)[0]["embedding"]) == TINY_IMAGEBIND["out_embed_dim"]
    with pytest.raises(UsageError, match="has no LLM"):
        pull(recipe_for("imagebind-huge"), weights, fake, llm=released["vicuna"], log=lambda _: None)
