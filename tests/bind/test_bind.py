"""``anymodal bind``: the pairs file and its errors, the objective and the retrieval figures against
hand computations, and a run that binds the toy encoder (seed 7) to the toy_alt encoder's space
(seed 0) on paired files: retrieval goes from chance to near perfect, a resumed run ends where an
unbroken one does, and the checkpoint's encoder is the one ``anymodal embed`` then uses."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from anymodal.bind.binder import ENCODERS_DIR, RETRIEVAL_FILE
from anymodal.bind.data import read_pairs, split
from anymodal.bind.objective import InfoNCE, TargetQueue, recall_at
from anymodal.cli import main
from anymodal.contract.errors import UsageError
from anymodal.testing import toy
from anymodal.train.metrics import read_metrics

PAIRS = 48


@pytest.fixture(autouse=True)
def toy_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_plugins) -> None:
    monkeypatch.setenv("ANYMODAL_HOME", str(tmp_path / "home"))
    use_plugins(toy)


def write_pairs(folder: Path, count: int = PAIRS) -> Path:
    """``count`` random [4, 8] arrays, each file paired with itself (toy with toy_alt)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(count):
        np.save(folder / f"{i}.npy", rng.normal(size=(4, 8)).astype(np.float32))
        lines.append(json.dumps({"toy": f"{i}.npy", "toy_alt": f"{i}.npy"}))
    file = folder / "pairs.jsonl"
    file.write_text("\n".join(lines) + "\n")
    return file


def write_config(folder: Path, pairs: Path, **train: Any) -> Path:
    settings = {"output_dir": str(folder / "run"), "batch_size": 16, "epochs": 60, "log_every": 5, **train}
    config = {
        "model": {
            "modalities": {"toy": {"encoder": {"options": {"seed": 7}}}, "toy_alt": {}},
        },
        "train": {**settings, "optimizer": {"lr": 0.05}, "schedule": {"warmup_ratio": 0.0}},
        "bind": {"modality": "toy", "target": "toy_alt", "data": str(pairs), "eval_fraction": 0.25},
    }
    file = folder / "bind.yaml"
    file.write_text(json.dumps(config))
    return file


# -- the pairs file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2 is not JSON"),
        ("[1, 2]", "line 2 is not a JSON object"),
        ('{"toy": "0.npy"}', "line 2 has no 'toy_alt' string (it has 'toy')"),
        ('{"toy": "gone.npy", "toy_alt": "0.npy"}', "line 2: the toy file"),
    ],
)
def test_a_bad_line_is_one_error_naming_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    file = write_pairs(tmp_path / "data", 3)
    lines = file.read_text().splitlines()
    file.write_text("\n".join([lines[0], line, lines[2]]) + "\n")
    with pytest.raises(UsageError) as caught:
        read_pairs(file, "toy", "toy_alt")
    assert message in str(caught.value)
    assert str(file) in str(caught.value)


def test_missing_or_too_small_pair_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no pairs file"):
        read_pairs(tmp_path / "none.jsonl", "toy", "image")
    file = write_pairs(tmp_path / "data", 1)
    with pytest.raises(UsageError, match="holds 1 pair"):
        read_pairs(file, "toy", "toy_alt")


def test_the_held_out_split_is_fixed_by_path_and_seed(tmp_path: Path) -> None:
    pairs = read_pairs(write_pairs(tmp_path / "data", 40), "toy", "toy_alt")
    train, held = split(pairs, 0.25, seed=0)
    assert len(held) == 10 and len(train) == 30 and not {p.source for p in held} & {p.source for p in train}
    assert split(pairs, 0.25, seed=0) == (train, held)
    assert split(pairs, 0.25, seed=1)[1] != held
    assert split(list(reversed(pairs)), 0.25, seed=0)[1] == list(reversed(held))  # not by position
    assert split(pairs, 0.0, seed=0) == (pairs, [])


# -- the objective and the figures -----------------------------------------------------------


def test_info_nce_is_the_mean_of_both_directions_cross_entropies() -> None:
    torch.manual_seed(0)
    bound, target = torch.randn(5, 3), torch.randn(5, 3)
    a, b = F.normalize(bound, dim=-1), F.normalize(target, dim=-1)
    logits = 20 * a @ b.T
    by_hand = sum(-logits[i].log_softmax(0)[i] - logits.T[i].log_softmax(0)[i] for i in range(5)) / 10
    assert torch.isclose(InfoNCE(20.0)(bound, target), by_hand, atol=1e-5)
    queued = torch.randn(7, 3)
    wider = torch.cat([b, F.normalize(queued, dim=-1)])
    with_queue = (
        sum(-(20 * a @ wider.T)[i].log_softmax(0)[i] - logits.T[i].log_softmax(0)[i] for i in range(5)) / 10
    )
    assert torch.isclose(InfoNCE(20.0)(bound, target, queued), with_queue, atol=1e-5)
    learned = InfoNCE(1 / 0.07, learnable=True)
    assert [name for name, _ in learned.named_parameters()] == ["log_scale"]
    assert math.isclose(float(learned.scale.detach()), 1 / 0.07, rel_tol=1e-6)
    assert not list(InfoNCE(20.0).parameters())
    with pytest.raises(ValueError, match="logit_scale"):
        InfoNCE(150.0)


def test_the_queue_keeps_the_newest_targets() -> None:
    queue = TargetQueue(5)
    queue.push(torch.arange(6.0).reshape(3, 2))
    queue.push(torch.arange(6.0, 12.0).reshape(3, 2))
    assert queue.items is not None and queue.items[:, 0].tolist() == [2.0, 4.0, 6.0, 8.0, 10.0]
    again = TargetQueue(5)
    again.load_state_dict(queue.state_dict())
    assert again.items is not None and torch.equal(again.items, queue.items)


def test_recall_at_k_counts_the_right_pair_among_the_k_nearest() -> None:
    target = torch.eye(4)
    bound = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0.1], [0, 0, 1, 0], [0, 0, 0.1, 1]])
    figures = recall_at(bound, target, (1, 2))
    assert figures["bound_to_target_recall_at_1"] == 0.75  # row 1 is nearest to target 2
    assert figures["bound_to_target_recall_at_2"] == 0.75  # target 1 is third for row 1
    # target 1 is as far from every row (cosine 0): a tie counts as a miss
    assert figures["target_to_bound_recall_at_1"] == 0.75


# -- a run ------------------------------------------------------------------------------------


def test_binding_the_toy_encoder_takes_retrieval_from_chance_to_near_perfect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, write_pairs(tmp_path / "data"))
    assert main(["bind", str(config), "--dry-run"]) == 0
    assert "binding the toy encoder to toy_alt embeddings: 36 pairs, 12 held out" in capsys.readouterr().out
    assert main(["bind", str(config), "train.max_steps=1", "train.output_dir=" + str(tmp_path / "one")]) == 0
    before = json.loads((tmp_path / "one" / "checkpoint-0000001" / RETRIEVAL_FILE).read_text())
    assert main(["bind", str(config)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "held out: bound_to_target_recall_at_1" in out
    run = tmp_path / "run"
    latest = run / (run / "latest").read_text().strip()
    after = json.loads((latest / RETRIEVAL_FILE).read_text())
    assert before["bound_to_target_recall_at_1"] <= 0.5
    assert after["bound_to_target_recall_at_1"] >= 0.9 and after["target_to_bound_recall_at_5"] == 1.0
    assert after["pairs"] == 12
    evals = [m for m in read_metrics(run) if "eval_bound_to_target_recall_at_1" in m]
    assert evals and evals[-1]["eval_bound_to_target_recall_at_1"] == after["bound_to_target_recall_at_1"]
    weights = load_file(str(latest / ENCODERS_DIR / "toy.safetensors"))
    assert sorted(weights) == ["proj.bias", "proj.weight"]
    # The checkpoint is a model config whose toy encoder is the bound one: embed the held-out files.
    written = (latest / "anymodal.yaml").read_text()
    assert f"./{ENCODERS_DIR}/toy.safetensors" in written
    file = tmp_path / "data" / "0.npy"
    assert (
        main(["embed", "--model", str(latest), "--toy", str(file), "--output", str(tmp_path / "e.npy")]) == 0
    )
    assert (
        main(["embed", "--model", str(latest), "--toy-alt", str(file), "--output", str(tmp_path / "t.npy")])
        == 0
    )
    assert (
        main(["embed", "--model", str(config), "--toy", str(file), "--output", str(tmp_path / "u.npy")]) == 0
    )

    def cosine(a: str, b: str) -> float:
        x, y = np.load(tmp_path / a).ravel(), np.load(tmp_path / b).ravel()
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    # the bound encoder points its embedding the target's way; the unbound one (seed 7) does not
    assert cosine("e.npy", "t.npy") > cosine("u.npy", "t.npy") + 0.3
    # and the model reads it through toy_alt's projector, with no projector of its own
    assert "projector:\n        from: toy_alt" in written
    assert main(["chat", "--model", str(latest), "--toy", str(file), "What is it?"]) == 0, (
        capsys.readouterr().err
    )


def test_a_bind_interrupted_and_resumed_ends_where_an_unbroken_one_does(tmp_path: Path) -> None:
    """With a queue of past targets and a learned logit scale, both checkpointed with the run."""
    from anymodal.bind.binder import Binder
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry

    config = write_config(
        tmp_path, write_pairs(tmp_path / "data", 24), max_steps=6, save_every=0, batch_size=4
    )
    common = ["bind.queue_size=8", "bind.learn_logit_scale=true"]
    assert main(["bind", str(config), *common, f"train.output_dir={tmp_path / 'whole'}"]) == 0
    broken = [*common, f"train.output_dir={tmp_path / 'broken'}"]
    binder = Binder(load_config(str(config), broken, get_registry()), get_registry(), log=lambda _: None)

    def stop(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        binder.fit(on_step=stop)
    assert (tmp_path / "broken" / "checkpoint-0000003").is_dir()
    assert main(["bind", str(config), *broken, "--resume"]) == 0
    whole = load_file(str(tmp_path / "whole" / "checkpoint-0000006" / ENCODERS_DIR / "toy.safetensors"))
    resumed = load_file(str(tmp_path / "broken" / "checkpoint-0000006" / ENCODERS_DIR / "toy.safetensors"))
    assert sorted(whole) == sorted(resumed)
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)
    figures = [
        json.loads((tmp_path / run / "checkpoint-0000006" / RETRIEVAL_FILE).read_text())
        for run in ("whole", "broken")
    ]
    assert figures[0] == figures[1]


def test_bad_bind_settings_are_one_error_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, write_pairs(tmp_path / "data", 4))
    for override, message in [
        ("bind.modality=null", "bind.modality is not set"),
        ("bind.target=image", "bind.target=image is not in model.modalities"),
        ("bind.target=toy", "bind.modality and bind.target are both toy"),
        ("bind.trainable=[head.]", "names none of the toy encoder's parameters (they start: proj.weight"),
        ("bind.logit_scale=500", "bind.logit_scale"),
    ]:
        assert main(["bind", str(config), override, "--dry-run"]) != 0
        assert message in capsys.readouterr().err, override


# -- another modality's projector (projector.from) ------------------------------------------------


def routed_config(tmp_path: Path, *extra: str) -> Any:
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry

    file = tmp_path / "routed.yaml"
    file.write_text(
        json.dumps({"model": {"modalities": {"toy": {}, "toy_alt": {"projector": {"from": "toy"}}}}})
    )
    return load_config(str(file), list(extra), get_registry())


def test_a_routed_modality_goes_through_the_other_modalitys_projector(tmp_path: Path) -> None:
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.model import AnyModalModel

    loaded = routed_config(tmp_path)
    assert loaded.config.model.modalities["toy_alt"].projector.from_ == "toy"
    assert "from: toy" in loaded.resolved_yaml()
    model = AnyModalModel.from_config(loaded.config.model, get_registry())
    assert model.projectors["toy_alt"] is model.projectors["toy"]
    file = tmp_path / "x.npy"
    np.save(file, np.ones((4, 8), dtype=np.float32))
    (projected,) = model.encode([model.prepare("toy_alt", file)])
    with torch.no_grad():
        by_hand = model.projectors["toy"](
            model.encoders["toy_alt"](model.prepare("toy_alt", file).tensor[None])
        )
    assert torch.allclose(projected, by_hand[0])
    assert model.tokens_per_input("toy_alt") == model.tokens_per_input("toy")
    # framed in the prompt as the modality whose projector reads it, as PandaGPT frames all as images
    processor = model.prompt_processor(get_registry())
    assert processor.span("toy_alt") == processor.span("toy") == ("<toy>", "</toy>")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.modalities.toy_alt.projector.from=toy_alt", "toy_alt cannot take its own projector"),
        ("model.modalities.toy_alt.projector.from=image", "image is not enabled (enabled: toy)"),
        ("model.modalities.toy.projector.from=toy_alt", "toy_alt itself takes toy's projector"),
        (
            "model.modalities.toy_alt.projector.name=mlp",
            "toy's, but projector.name is set too; set it to null",
        ),
        (
            "model.modalities.toy_alt.projector={from: toy, weights: p.safetensors, options: {a: 1}}",
            "toy's, but projector.weights and projector.options are set too; set them to null",
        ),
    ],
)
def test_bad_routes_are_config_errors(tmp_path: Path, override: str, message: str) -> None:
    from anymodal.contract.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        routed_config(tmp_path, override)
    assert message in str(caught.value)


def test_a_routed_encoder_of_another_width_is_told_to_bind_first(tmp_path: Path) -> None:
    from anymodal.contract.errors import ConfigError
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.model import AnyModalModel

    loaded = routed_config(tmp_path, "model.modalities.toy_alt.encoder.options.dim=8")
    with pytest.raises(ConfigError, match="reads pooled of pooled_dim 16, and the toy_alt encoder gives 8"):
        AnyModalModel.from_config(loaded.config.model, get_registry())


# -- the real weights' path: ImageBind's vision trunk as the frozen target --------------------------

SMALL_IMAGEBIND = {
    "kernel_size": [2, 8, 8],
    "image_size": 32,
    "out_embed_dim": 16,
    "vision_embed_dim": 32,
    "vision_num_blocks": 2,
    "vision_num_heads": 4,
}


def test_binding_to_imagebinds_frozen_vision_trunk_from_a_checkpoint_in_the_real_layout(
    tmp_path: Path, use_plugins, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same command as for any target: only the config names ImageBind and its weights file,
    a flat state dict as ``imagebind_huge.pth`` is (here at small dimensions, random weights)."""
    from anymodal_image import plugin as image_plugin
    from PIL import Image

    from anymodal.encoders.imagebind import ImageBind, ImageBindOptions

    use_plugins(toy, image_plugin)
    torch.manual_seed(3)
    trunk = ImageBind(ImageBindOptions(config=SMALL_IMAGEBIND).image_bind_config(), ["vision"])
    weights = tmp_path / "imagebind_small.pth"
    torch.save(trunk.state_dict(), weights)
    assert any(key.startswith("modality_trunks.vision.") for key in trunk.state_dict())
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    lines = []
    for i in range(24):  # a toy array and a picture drawn from it: the pair shares its content
        array = rng.normal(size=(4, 8)).astype(np.float32)
        np.save(data / f"{i}.npy", array)
        pixels = np.kron((array[:, :4] > 0).astype(np.uint8) * 255, np.ones((8, 8), np.uint8))
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(data / f"{i}.png")
        lines.append(json.dumps({"toy": f"{i}.npy", "image": f"{i}.png"}))
    (data / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    image = {
        "encoder": {"name": "imagebind", "weights": str(weights), "options": {"config": SMALL_IMAGEBIND}},
        "preprocess": {"image_size": 32},
    }
    config = {
        "model": {"modalities": {"toy": {"encoder": {"options": {"dim": 16}}}, "image": image}},
        "train": {
            "output_dir": str(tmp_path / "run"),
            "batch_size": 8,
            "max_steps": 4,
            "feature_cache": str(tmp_path / "cache"),
        },
        "bind": {
            "modality": "toy",
            "target": "image",
            "data": str(data / "pairs.jsonl"),
            "eval_fraction": 0.25,
        },
    }
    file = tmp_path / "bind.yaml"
    file.write_text(json.dumps(config))
    assert main(["bind", str(file)]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "target embeddings: 24 encoded, 0 from the cache" in err
    assert main(["bind", str(file), f"train.output_dir={tmp_path / 'again'}"]) == 0
    assert "target embeddings: 0 encoded, 24 from the cache" in capsys.readouterr().err
    # the cached targets are ImageBind's own pooled embeddings of the pictures, from the checkpoint
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.embedding import embed_files

    loaded = load_config(str(file), [], get_registry())
    (reference,) = embed_files([("image", data / "0.png")], loaded.config, get_registry())
    entries = list((tmp_path / "cache").rglob("*.safetensors"))
    assert len(entries) == 24 and reference.vector.shape == (16,)
    assert any(torch.allclose(load_file(str(e))["pooled"], reference.vector, atol=1e-5) for e in entries)


def test_a_bound_imagebind_trunk_is_written_in_imagebinds_own_layout_and_read_back(
    tmp_path: Path, use_plugins, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new head on a frozen ImageBind backbone (bind.trainable), the checkpoint in the flat layout
    its loader reads, and the checkpoint's model embedding with the trained head."""
    from anymodal_image import plugin as image_plugin
    from PIL import Image

    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.embedding import embed_files

    use_plugins(toy, image_plugin)
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(2)
    lines = []
    for i in range(12):
        np.save(data / f"{i}.npy", rng.normal(size=(4, 8)).astype(np.float32))
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / f"{i}.png")
        lines.append(json.dumps({"image": f"{i}.png", "toy": f"{i}.npy"}))
    (data / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    image = {
        "encoder": {"name": "imagebind", "options": {"config": SMALL_IMAGEBIND}},
        "preprocess": {"image_size": 32},
    }
    config = {
        "model": {"modalities": {"image": image, "toy": {}}},
        "train": {"output_dir": str(tmp_path / "run"), "batch_size": 4, "max_steps": 3},
        "bind": {
            "modality": "image",
            "target": "toy",
            "data": str(data / "pairs.jsonl"),
            "eval_fraction": 0.25,
            "trainable": ["model.modality_heads."],
        },
    }
    file = tmp_path / "bind.yaml"
    file.write_text(json.dumps(config))
    assert main(["bind", str(file), "--dry-run"]) == 0
    # the head: LayerNorm(32), 64 weights, and Linear(32 -> 16) without bias, 512
    assert "trainable parameters 576 of" in capsys.readouterr().out
    assert main(["bind", str(file)]) == 0, capsys.readouterr().err
    checkpoint = tmp_path / "run" / "checkpoint-0000003"
    written = load_file(str(checkpoint / ENCODERS_DIR / "image.safetensors"))
    assert all(
        key.startswith(
            (
                "modality_preprocessors.vision.",
                "modality_trunks.vision.",
                "modality_heads.vision.",
                "modality_postprocessors.vision",
            )
        )
        for key in written
    )
    untrained = embed_files(
        [("image", data / "0.png")], load_config(str(file), [], get_registry()).config, get_registry()
    )
    bound = embed_files(
        [("image", data / "0.png")], load_config(str(checkpoint), [], get_registry()).config, get_registry()
    )
    assert not torch.allclose(untrained[0].vector, bound[0].vector)  # the trained head, read back


def test_a_routed_embedding_can_be_scaled_to_the_length_the_projector_knows(tmp_path: Path) -> None:
    from anymodal.contract.errors import ConfigError
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.model import AnyModalModel

    loaded = routed_config(tmp_path, "model.modalities.toy_alt.projector.norm=3.5")
    model = AnyModalModel.from_config(loaded.config.model, get_registry())
    file = tmp_path / "x.npy"
    np.save(file, np.full((4, 8), 0.3, dtype=np.float32))
    prepared = model.prepare("toy_alt", file)
    (projected,) = model.encode([prepared])
    with torch.no_grad():
        output = model.encoders["toy_alt"](prepared.tensor[None])
        scaled = F.normalize(output.pooled, dim=-1) * 3.5
        by_hand = model.projectors["toy"](type(output)(output.features, scaled))
    assert torch.allclose(projected, by_hand[0], atol=1e-6)
    assert model.projectors["toy_alt"].projector is model.projectors["toy"]
    for override, message in [
        ("model.modalities.toy.projector.norm=2", "set projector.from too"),
        ("model.modalities.toy_alt.projector.norm=-1", "must be more than 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            routed_config(tmp_path, override)
