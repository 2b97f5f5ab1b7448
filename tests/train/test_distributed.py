"""The distributed path: two CPU processes under torchrun, DDP over gloo, as a user would launch it.

Each test reads the results of one real launch of ``distributed_worker.py`` (2 processes, stage 2:
the toy projector and LoRA train): both ranks ran as MULTI_CPU, DDP kept their weights bit-identical,
the data was split between them, the checkpoints are complete and resuming the 2-process run from a
mid-epoch checkpoint reproduces the uninterrupted run exactly. Rank 1 is made to reach every
checkpoint half a second after rank 0, so a missing barrier between the processes' share of the
state and the checkpoint's publication shows every time rather than now and then.

Data: 16 records, 4 held out for evaluation; 12 training examples / (batch 2 x 2 processes) is 3
optimizer steps per epoch, so the step-2 checkpoint is mid-epoch and step 4 is in the next epoch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from anymodal.train.metrics import read_metrics

WORKER = Path(__file__).with_name("distributed_worker.py")
PROCESSES = 2
RECORDS, HELD_OUT = 16, 4
STEPS_PER_EPOCH = (RECORDS - HELD_OUT) // (2 * PROCESSES)  # batch_size 2
CHECKPOINTS = ("checkpoint-0000002", "checkpoint-0000004")
#: Rank 1 reaches every save this much later than rank 0, as a slower process would; the checkpoint
#: must still hold its state (a run without a barrier there publishes the checkpoint without it).
SLOW_SAVE = 0.5

# Two torchrun launches of two processes each (~20-30 s on 2 cores): in the default suite all the
# same, because this is the only proof that the multi-process path works.


def launch(config: Path, results: Path, *args: str) -> list[dict[str, Any]]:
    """Run the worker on 2 CPU processes under torchrun; each rank's report, by rank."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a local rendezvous on a free port the launcher picks itself
        "--nproc_per_node",
        str(PROCESSES),
        str(WORKER),
        str(config),
        str(results),
        "--slow-save",
        str(SLOW_SAVE),
        *args,
    ]
    # One thread per process: two processes on two cores must not oversubscribe them.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.update(HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        # torchrun ends with its own summary; the workers' exceptions are the lines naming an Error.
        errors = "\n".join(line for line in done.stderr.splitlines() if "Error" in line)
        pytest.fail(
            f"torchrun exited {done.returncode}:\n{errors}\n--- stderr tail ---\n{done.stderr[-4000:]}"
        )
    return [json.loads((results / f"rank{rank}.json").read_text()) for rank in range(PROCESSES)]


def tensors(results: Path, rank: int, when: str) -> dict[str, torch.Tensor]:
    return load_file(str(results / f"rank{rank}-{when}.safetensors"))


def losses(output_dir: Path) -> dict[int, float]:
    return {line["step"]: line["loss"] for line in read_metrics(output_dir) if "loss" in line}


def eval_losses(output_dir: Path) -> dict[int, float]:
    return {line["step"]: line["eval_loss"] for line in read_metrics(output_dir) if "eval_loss" in line}


def checkpoint_tensors(directory: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's projector and LoRA weights, under the trainer's parameter names."""
    projector = load_file(str(directory / "projectors" / "toy.safetensors"))
    adapter = load_file(str(directory / "adapter" / "adapter_model.safetensors"))
    named = {f"projectors.toy.{key}": value for key, value in projector.items()}
    for key, value in adapter.items():  # PEFT files leave out the adapter name ("default")
        for matrix in ("lora_A", "lora_B"):
            key = key.replace(f".{matrix}.", f".{matrix}.default.")
        named[f"llm.{key}"] = value
    return named


def assert_same_tensors(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> None:
    assert sorted(left) == sorted(right)
    different = [name for name in left if not torch.equal(left[name], right[name])]
    assert different == []


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_llm: Path) -> dict[str, Any]:
    """One uninterrupted 2-process run of 4 steps, saving every 2."""
    root = tmp_path_factory.mktemp("distributed")
    records = []
    for index in range(RECORDS):
        sign = 1.0 if index % 2 else -1.0
        np.save(root / f"x{index}.npy", np.full((4, 8), sign * (1 + index / RECORDS), dtype=np.float32))
        conversation = [
            {"from": "human", "value": "<toy>\nWhat is it?"},
            {"from": "gpt", "value": "plus" if sign > 0 else "minus"},
        ]
        records.append({"toy": f"x{index}.npy", "conversations": conversation})
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    config = root / "train.yaml"
    # model.device=cpu: the test means MULTI_CPU (gloo) even on a machine with a GPU.
    config.write_text(
        f"model:\n  llm: {{path: {tiny_llm}}}\n  template: plain\n  device: cpu\n"
        "  modalities: {toy: {}}\n"
        f"train:\n  stage: 2\n  data: {{train: {data}, eval_fraction: {HELD_OUT / RECORDS}}}\n"
        f"  output_dir: {root / 'run'}\n  batch_size: 2\n  max_steps: 4\n  save_every: 2\n"
        f"  optimizer: {{lr: 0.01}}\n  feature_cache: {root / 'cache'}\n"
    )
    results = root / "results"
    reports = launch(config, results)
    return {"root": root, "config": config, "output": root / "run", "results": results, "reports": reports}


@pytest.fixture(scope="module")
def resumed(run: dict[str, Any]) -> dict[str, Any]:
    """The same run resumed on 2 fresh processes from its step-2 checkpoint, into another directory."""
    root = run["root"]
    results = root / "resumed-results"
    checkpoint = run["output"] / CHECKPOINTS[0]
    output = root / "resumed"
    reports = launch(
        run["config"], results, "--resume", str(checkpoint), "--set", f"train.output_dir={output}"
    )
    return {"output": output, "results": results, "reports": reports, "checkpoint": checkpoint}


def test_both_ranks_ran_as_multi_cpu_ddp_and_logged_the_same_reduced_losses(run: dict[str, Any]) -> None:
    reports = run["reports"]
    assert [report["rank"] for report in reports] == [0, 1]
    for report in reports:
        assert report["num_processes"] == PROCESSES
        assert report["distributed_type"] == "DistributedType.MULTI_CPU"
        assert report["backend"] == "gloo"
        assert report["step"] == 4
        assert len(report["losses"]) == 4
        assert all(np.isfinite(report["losses"]))
    # The step loss is reduced across processes, so every rank returns the same numbers, and the
    # main process's metrics.jsonl lists exactly those (and the final evaluation, also reduced).
    assert reports[0]["losses"] == reports[1]["losses"]
    assert losses(run["output"]) == dict(enumerate(reports[0]["losses"], start=1))
    assert reports[0]["eval_loss"] == reports[1]["eval_loss"]
    assert eval_losses(run["output"]) == {4: reports[0]["eval_loss"]}


def test_each_rank_trains_on_its_own_half_of_the_epoch(run: dict[str, Any]) -> None:
    train = [report["loads"]["train"] for report in run["reports"]]
    held_out = [report["loads"]["eval"] for report in run["reports"]]
    # Epoch 0 is 3 batches of 2 per process: a process's first 6 loads, all different; the two
    # processes' shares are disjoint and together are the whole training split.
    per_epoch = STEPS_PER_EPOCH * 2
    first = [set(loads[:per_epoch]) for loads in train]
    assert [len(share) for share in first] == [per_epoch, per_epoch]
    assert first[0].isdisjoint(first[1])
    assert len(first[0] | first[1]) == RECORDS - HELD_OUT
    # Each process evaluated its own half of the held-out records, which were never trained on.
    assert [len(loads) for loads in held_out] == [HELD_OUT // PROCESSES] * PROCESSES
    assert len(set(held_out[0]) | set(held_out[1])) == HELD_OUT
    assert (first[0] | first[1]).isdisjoint(held_out[0] + held_out[1])


def test_ddp_keeps_the_ranks_weights_bit_identical_and_they_trained(run: dict[str, Any]) -> None:
    results = run["results"]
    initial = [tensors(results, rank, "initial") for rank in range(PROCESSES)]
    final = [tensors(results, rank, "final") for rank in range(PROCESSES)]
    names = sorted(final[0])
    assert any(name.startswith("projectors.toy.") for name in names)
    assert sum("lora_" in name for name in names) == 16  # A and B of q/k/v/o in both tiny layers
    assert_same_tensors(initial[0], initial[1])  # the same seed on every process
    assert_same_tensors(final[0], final[1])  # DDP averaged the gradients: in sync after 4 steps
    unchanged = [name for name in names if torch.equal(initial[0][name], final[0][name])]
    assert unchanged == []


def test_one_complete_checkpoint_per_save_step(run: dict[str, Any]) -> None:
    output = run["output"]
    assert sorted(path.name for path in output.glob("checkpoint-*")) == list(CHECKPOINTS)
    assert [path.name for path in output.glob(".tmp-*")] == []
    assert (output / "latest").read_text().strip() == CHECKPOINTS[-1]
    for name in CHECKPOINTS:
        directory = output / name
        for file in ("anymodal.yaml", "projectors/toy.safetensors", "adapter/adapter_config.json"):
            assert (directory / file).is_file(), f"{name} lacks {file}"
        # accelerate's state: one RNG file per process, so each resumes its own random stream.
        state = {path.name for path in (directory / "state").iterdir()}
        assert {"random_states_0.pkl", "random_states_1.pkl"} <= state
    assert [report["last_checkpoint"] for report in run["reports"]] == [str(output / CHECKPOINTS[-1])] * 2
    # The last checkpoint holds exactly the weights the run ended with (unwrapped from DDP).
    assert_same_tensors(checkpoint_tensors(output / CHECKPOINTS[-1]), tensors(run["results"], 0, "final"))


def test_resuming_from_the_step_2_checkpoint_reproduces_the_run(
    run: dict[str, Any], resumed: dict[str, Any]
) -> None:
    reports = resumed["reports"]
    expected = losses(run["output"])
    assert [report["step"] for report in reports] == [4, 4]
    # Steps 3 (the rest of epoch 0) and 4 (epoch 1), bit for bit: the same batches on each process
    # (skipped by position) and the same dropout masks (per-process RNG state restored).
    assert losses(resumed["output"]) == {3: expected[3], 4: expected[4]}
    assert [report["losses"] for report in reports] == [[expected[3], expected[4]]] * 2
    assert eval_losses(resumed["output"]) == eval_losses(run["output"])
    # Each process picked up at its third batch of epoch 0 without loading the two it had done.
    for before, after in zip(run["reports"], reports, strict=True):
        assert after["loads"]["train"][:2] == before["loads"]["train"][4:6]
    # Started from the checkpoint's weights and ended where the uninterrupted run did, on both ranks.
    for rank in range(PROCESSES):
        assert_same_tensors(
            tensors(resumed["results"], rank, "initial"), checkpoint_tensors(resumed["checkpoint"])
        )
        assert_same_tensors(tensors(resumed["results"], rank, "final"), tensors(run["results"], 0, "final"))
