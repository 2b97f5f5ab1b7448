"""The training loop: trainable sets, checkpoints, exact resume, feature cache, chatting with a result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from anymodal.cli import cli
from anymodal.config import load_config
from anymodal.config.sources import locate
from anymodal.contract.errors import InputError, UsageError
from anymodal.contract.registry import set_registry
from anymodal.runtime.chat import ChatSession
from anymodal.train.checkpoint import find_checkpoint
from anymodal.train.metrics import read_metrics
from anymodal.train.setup import parameter_counts
from anymodal.train.trainer import Trainer

QUIET = {"log": lambda text: None}
# Tiny Llama: hidden 32, 2 layers, 4 heads of 8, 2 KV heads, so k/v project 32 -> 16.
LORA_R32 = 2 * ((32 * 32 + 32 * 32) * 2 + (32 * 32 + 16 * 32) * 2)  # q, o and k, v in 2 layers
TOY_LINEAR = 16 * 32 + 32  # pooled 16-d -> LLM width 32, with bias


def trainer(config: Path, registry, *overrides: str, resume: str | None = None) -> Trainer:
    return Trainer(load_config(config, overrides, registry=registry), registry, resume=resume, **QUIET)


def test_trainable_parameters_per_stage(train_config, toy_registry):
    stage1 = trainer(train_config, toy_registry, "train.stage=1")
    assert parameter_counts(stage1.model)[0] == TOY_LINEAR
    assert sorted(stage1.trainable) == ["projectors.toy.proj.bias", "projectors.toy.proj.weight"]
    stage2 = trainer(train_config, toy_registry)
    assert parameter_counts(stage2.model)[0] == TOY_LINEAR + LORA_R32
    lora = [name for name in stage2.trainable if "lora_" in name]
    assert len(lora) == 2 * 4 * 2  # A and B for q/k/v/o in both layers
    assert all(p.dtype == torch.float32 for p in stage2.trainable.values())
    small = trainer(train_config, toy_registry, "train.lora.r=4", "train.lora.target_modules=[q_proj]")
    assert parameter_counts(small.model)[0] == TOY_LINEAR + 2 * (4 * 32 + 32 * 4)


def test_only_the_listed_projectors_train(tmp_path, tiny_llm, toy_registry, toy_data):
    data = toy_data()
    file = tmp_path / "two.yaml"
    file.write_text(
        f"model:\n  llm: {{path: {tiny_llm}}}\n  template: plain\n"
        "  modalities: {toy: {}, toy_alt: {}}\n"
        f"train: {{data: {{train: {data}}}, projectors: [toy_alt], output_dir: {tmp_path / 'run'}}}\n"
    )
    run = trainer(file, toy_registry)
    assert {name.split(".")[1] for name in run.trainable} == {"toy_alt"}
    assert not any(p.requires_grad for p in run.model.projectors["toy"].parameters())


def test_a_run_writes_complete_checkpoints_and_metrics(train_config, toy_registry, tmp_path):
    result = trainer(train_config, toy_registry).fit()
    run = tmp_path / "run"
    assert result.step == 6 and result.last_checkpoint == run / "checkpoint-0000006"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint-0000003",
        "checkpoint-0000006",
        "latest",
        "metrics.jsonl",
    ]
    assert (run / "latest").read_text().strip() == "checkpoint-0000006"
    # The run, and its `latest` pointer, stand for the newest checkpoint wherever a model or a
    # checkpoint to resume is named.
    for source in (run, run / "latest"):
        assert locate(str(source)) == (
            run / "checkpoint-0000006" / "anymodal.yaml",
            str(source),
            result.last_checkpoint,
        )
        assert find_checkpoint(str(source), tmp_path / "elsewhere") == result.last_checkpoint  # --resume
    files = sorted(str(p.relative_to(result.last_checkpoint)) for p in result.last_checkpoint.rglob("*"))
    for expected in (
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/tokenizer.json",
        "anymodal.yaml",
        "projectors/toy.safetensors",
        "state/custom_checkpoint_0.pkl",
        "state/optimizer.bin",
        "state/random_states_0.pkl",
        "versions.json",
    ):
        assert expected in files
    # The frozen LLM is never written into a checkpoint.
    assert not [f for f in files if Path(f).name in ("model.safetensors", "pytorch_model.bin")]
    assert set(load_file(result.last_checkpoint / "projectors/toy.safetensors")) == {
        "proj.weight",
        "proj.bias",
    }
    adapter = json.loads((result.last_checkpoint / "adapter/adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], adapter["lora_dropout"]) == (32, 32, 0.1)
    assert sorted(adapter["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    versions = json.loads((result.last_checkpoint / "versions.json").read_text())
    assert versions["libraries"]["torch"] == torch.__version__
    metrics = read_metrics(run)
    steps = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4, 5, 6]
    assert all(m["lr"] > 0 and m["samples_per_s"] > 0 and np.isfinite(m["loss"]) for m in steps)
    assert [m["step"] for m in metrics if "eval_loss" in m] == [6]
    assert result.losses == [m["loss"] for m in steps]


def test_resume_after_an_interruption_continues_exactly(train_config, toy_registry, tmp_path):
    overrides = ("train.max_steps=8", "train.save_every=0")
    full = trainer(train_config, toy_registry, *overrides, f"train.output_dir={tmp_path / 'full'}").fit()

    def interrupt(step: int, loss: float) -> None:
        if step == 5:
            raise KeyboardInterrupt

    cut = trainer(train_config, toy_registry, *overrides, f"train.output_dir={tmp_path / 'cut'}")
    with pytest.raises(KeyboardInterrupt):
        cut.fit(on_step=interrupt)
    # The interruption saved step 5, the last completed step, although no save was due.
    assert (tmp_path / "cut/latest").read_text().strip() == "checkpoint-0000005"
    resumed = trainer(
        train_config, toy_registry, *overrides, f"train.output_dir={tmp_path / 'cut'}", resume="latest"
    )
    result = resumed.fit()
    assert result.step == 8
    losses = [m["loss"] for m in read_metrics(tmp_path / "cut") if "loss" in m]
    assert losses == full.losses  # bit-identical, dropout and data order included
    assert len(losses) == 8


def test_resume_without_a_checkpoint_is_a_usage_error(train_config, toy_registry):
    with pytest.raises(UsageError, match=r"nothing to resume: .* has no checkpoint yet"):
        trainer(train_config, toy_registry, resume="latest")


def test_chat_with_a_trained_checkpoint(train_config, toy_registry, tmp_path):
    result = trainer(train_config, toy_registry, "train.max_steps=2", "train.save_every=0").fit()
    assert result.last_checkpoint is not None
    loaded = load_config(result.last_checkpoint, ["generation.max_new_tokens=4"], registry=toy_registry)
    session = ChatSession.from_config(loaded.config, toy_registry)
    saved = load_file(result.last_checkpoint / "projectors/toy.safetensors")
    assert torch.equal(session.model.projectors["toy"].proj.weight, saved["proj.weight"])
    assert any("lora_" in name for name, _ in session.model.bridge.module.named_parameters())
    session.attach("toy", tmp_path / "x1.npy")
    assert isinstance("".join(session.ask("What is it?")), str)
    set_registry(toy_registry)
    try:
        out = CliRunner().invoke(
            # The run's output directory means its newest checkpoint.
            cli,
            ["chat", "--model", str(tmp_path / "run"), "--toy", str(tmp_path / "x1.npy"), "hi"],
        )
    finally:
        set_registry(None)
    assert out.exit_code == 0, out.output


def test_stage_two_starts_from_stage_one_weights(train_config, toy_registry, tmp_path):
    first = trainer(train_config, toy_registry, "train.stage=1", "train.max_steps=2", "train.save_every=0")
    stage1 = first.fit().last_checkpoint
    assert stage1 is not None and stage1.parent == tmp_path / "run"
    # init_from takes a checkpoint or, as here, a run's output directory (its newest checkpoint).
    second = trainer(
        train_config, toy_registry, f"train.init_from={stage1.parent}", f"train.output_dir={tmp_path / 'two'}"
    )
    saved = load_file(stage1 / "projectors/toy.safetensors")
    assert torch.equal(second.model.projectors["toy"].proj.weight, saved["proj.weight"])
    assert parameter_counts(second.model)[0] == TOY_LINEAR + LORA_R32
    with pytest.raises(UsageError, match="is not an anymodal checkpoint"):
        trainer(train_config, toy_registry, f"train.init_from={tmp_path}")


@pytest.mark.parametrize(
    ("projector", "stored"),
    [("{name: linear}", {"pooled": [16]}), ("{name: mlp, options: {input: tokens}}", {"features": [4, 16]})],
    ids=["pooled", "tokens"],
)
def test_feature_cache_is_filled_once_and_gives_the_same_losses(
    projector, stored, train_config, toy_registry, tmp_path
):
    cache = tmp_path / "features"
    common = (
        "train.max_steps=3",
        "train.save_every=0",
        "train.stage=1",
        f"model.modalities.toy.projector={projector}",
    )
    plain = trainer(train_config, toy_registry, *common, f"train.output_dir={tmp_path / 'a'}").fit()
    cached_run = trainer(
        train_config,
        toy_registry,
        *common,
        f"train.feature_cache={cache}",
        f"train.output_dir={tmp_path / 'b'}",
    )
    assert cached_run.cache is not None
    refs = [ref for e in cached_run.data.train + cached_run.data.eval for ref in e.media]
    assert len(cached_run.cache.missing(refs)) == 16
    cached = cached_run.fit()
    assert cached_run.cache.missing(refs) == []
    entries = list(cache.rglob("*.safetensors"))
    assert len(entries) == 16 and len({p.parts[-4] for p in entries}) == 1  # one encoder identity
    # Each entry holds what the projector reads, in a folder that says so.
    assert {p.parts[-3] for p in entries} == {"+".join(stored)}
    assert all({k: list(t.shape) for k, t in load_file(p).items()} == stored for p in entries)
    np.testing.assert_allclose(cached.losses, plain.losses, rtol=1e-6)
    # Another encoder (a new seed) gets its own entries; the same encoder reuses them.
    again = trainer(train_config, toy_registry, *common, f"train.feature_cache={cache}")
    assert again.cache is not None and again.cache.missing(refs) == []
    other = trainer(
        train_config,
        toy_registry,
        *common,
        f"train.feature_cache={cache}",
        "model.modalities.toy.encoder.options.seed=1",
    )
    assert other.cache is not None and len(other.cache.missing(refs)) == 16


def test_bad_records_fail_with_a_report_or_are_skipped(train_config, toy_registry, tmp_path):
    data = tmp_path / "data.jsonl"
    lines = data.read_text().splitlines()
    lines[2] = json.dumps(
        {
            "toy": "gone.npy",
            "conversations": [{"from": "human", "value": "<toy> hi"}, {"from": "gpt", "value": "x"}],
        }
    )
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        UsageError, match=r"data.jsonl: 16 records, 15 valid, 1 invalid: missing file 1 \(e.g. data.jsonl:3"
    ):
        trainer(train_config, toy_registry)
    skipping = trainer(train_config, toy_registry, "train.data.on_invalid=skip")
    assert len(skipping.data.train) + len(skipping.data.eval) == 15


def test_training_needs_data(train_config, toy_registry):
    with pytest.raises(UsageError, match=r"train\.data\.train is not set"):
        trainer(train_config, toy_registry, "train.data.train=null")


def test_dry_run_prints_the_plan_and_trains_nothing(train_config, toy_registry, tmp_path):
    set_registry(toy_registry)
    try:
        out = CliRunner().invoke(cli, ["train", str(train_config), "--dry-run"])
    finally:
        set_registry(None)
    assert out.exit_code == 0, out.output
    assert f"trainable parameters: {TOY_LINEAR + LORA_R32:,} of " in out.output
    assert "estimated memory per process:" in out.output
    assert "12 training and 4 evaluation examples" in out.output
    assert not (tmp_path / "run").exists()


def test_train_cli_runs_and_resumes(train_config, toy_registry, tmp_path):
    set_registry(toy_registry)
    try:
        first = CliRunner().invoke(cli, ["train", str(train_config), "train.max_steps=3"])
        again = CliRunner().invoke(cli, ["train", str(train_config), "train.max_steps=4", "--resume"])
        nothing = CliRunner().invoke(
            cli, ["train", str(train_config), f"train.output_dir={tmp_path / 'x'}", "--resume"]
        )
    finally:
        set_registry(None)
    assert first.exit_code == 0, first.output
    assert "trained 3 step(s); checkpoint:" in first.output
    assert again.exit_code == 0, again.output
    assert "resumed from" in again.output and "checkpoint-0000004" in again.output
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.output


def test_a_file_that_breaks_mid_run_saves_progress_and_resume_finishes(train_config, toy_registry, tmp_path):
    logged: list[str] = []
    run = Trainer(
        load_config(train_config, ["train.save_every=0", "train.max_steps=8"], registry=toy_registry),
        toy_registry,
        log=logged.append,
    )
    originals = {p: p.read_bytes() for p in tmp_path.glob("x*.npy")}

    def corrupt(step: int, loss: float) -> None:
        if step == 2:
            for path in originals:
                path.write_bytes(b"not an array")

    with pytest.raises(InputError, match=r"toy file is not a .npy file .*x\d+\.npy"):
        run.fit(on_step=corrupt)
    # The last completed step was saved (the loader reads a batch ahead, so that may be step 3).
    last = [m["step"] for m in read_metrics(tmp_path / "run") if "loss" in m][-1]
    assert last >= 2 and (tmp_path / "run/latest").read_text().strip() == f"checkpoint-{last:07d}"
    assert any(
        line.startswith("stopped: toy file is not a .npy file") and "--resume" in line for line in logged
    )
    for path, content in originals.items():
        path.write_bytes(content)
    resumed = trainer(train_config, toy_registry, "train.save_every=0", "train.max_steps=8", resume="latest")
    assert resumed.fit().step == 8


def test_gradient_checkpointing_and_accumulation_give_the_same_training(train_config, toy_registry, tmp_path):
    common = (
        "train.max_steps=2",
        "train.save_every=0",
        "train.lora.dropout=0.0",
        "train.data.eval_fraction=0",
    )
    base = trainer(train_config, toy_registry, *common, f"train.output_dir={tmp_path / 'a'}").fit()
    checkpointed = trainer(
        train_config,
        toy_registry,
        *common,
        "train.gradient_checkpointing=true",
        f"train.output_dir={tmp_path / 'b'}",
    )
    assert any(getattr(m, "gradient_checkpointing", False) for m in checkpointed.model.llm.modules())
    np.testing.assert_allclose(checkpointed.fit().losses, base.losses, rtol=1e-5)
    # Two micro-batches of 2 per optimizer step: same samples per step, so steps per epoch match.
    accumulated = trainer(
        train_config,
        toy_registry,
        *common,
        "train.batch_size=2",
        "train.grad_accum=2",
        f"train.output_dir={tmp_path / 'c'}",
    ).fit()
    assert accumulated.step == 2 and len(accumulated.losses) == 2
    np.testing.assert_allclose(accumulated.losses, base.losses, rtol=1e-4)


def test_training_without_a_cache_never_hashes_input_files(train_config, toy_registry, monkeypatch):
    import anymodal.runtime.model

    def refuse(file: Path) -> str:
        raise AssertionError(f"hashed {file}")

    monkeypatch.setattr(anymodal.runtime.model, "file_digest", refuse)
    result = trainer(train_config, toy_registry, "train.max_steps=2", "train.save_every=0").fit()
    assert result.step == 2


def test_the_data_is_checked_before_the_model_is_loaded(train_config, toy_registry, tmp_path):
    # Both the LLM and the data file are missing: the data error comes first, with nothing loaded.
    with pytest.raises(InputError, match=r"data file .*nowhere\.jsonl not found"):
        trainer(
            train_config,
            toy_registry,
            f"model.llm.path={tmp_path / 'no-llm'}",
            "train.data.train=./nowhere.jsonl",
        )
