"""Training throughput: anymodal's Trainer with the feature cache off and on, against a plain loop.

Three ways to train the same thing, in one run: the same image-caption data (PNG files through the
installed ``image`` plugin), the same model (a small ImageBind vision trunk with random weights, a
linear projector, a tiny random Llama), stage 1 (projectors only), the same seed, batch size,
optimizer and number of optimizer steps:

1. reference: a hand-written PyTorch loop with none of the trainer's machinery. For every batch it
   decodes and preprocesses each file with the plugin's own loader and preprocessor, runs the
   frozen encoder, projects, writes the projections into the embedded prompt, runs the LLM with
   labels, backward, AdamW step. (It reuses anymodal's tokenisation to build the examples once.)
2. anymodal's ``Trainer`` with ``train.feature_cache`` unset: encodes every input at every step.
3. anymodal's ``Trainer`` with ``train.feature_cache`` set, the cache filled first (timed apart).

Only the step loop is timed, the same way for all three: a ``time.perf_counter`` stamp after each
optimizer step (the trainer's ``on_step`` hook), and samples/s over steps 2..N, so model loading,
tokenisation, the cache fill, the first step's warm-up and the final checkpoint are left out (the
trainer's own ``metrics.jsonl`` time stamps give the same figure; both are printed). The three run
``--rounds`` times, interleaved, and each keeps its best round: other load on a shared machine only
ever slows a round down. Gradient clipping is off and the learning rate constant, so all three do
the same arithmetic; the script prints the largest difference between their per-step losses.

    python benchmarks/training.py                    # CPU, ~1.5 minutes on 2 cores
    python benchmarks/training.py --steps 48 --batch-size 4 --json results.json
    python benchmarks/training.py --gpu-7b           # CUDA only: stage 2 on a 7B-shaped Llama

``--gpu-7b`` measures something else: tokens/s and peak GPU memory of stage-2 steps (LoRA r=32 on
q/k/v/o plus a linear projector from 1024-d features) on a Llama with 7B shapes and random bf16
weights, from random features and token ids, with bf16 autocast as the trainer uses on CUDA.

It stays one script of about 480 lines so that the reference loop and the two trainer runs it
is compared with can be read, and rerun, from one file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from anymodal_hf.bridge import HFBridge
from PIL import Image, ImageDraw

import anymodal
from anymodal.config import LoadedConfig, load_config
from anymodal.contract.registry import Registry, load_registry
from anymodal.runtime.model import AnyModalModel
from anymodal.testing import tiny_llama, train_bpe_tokenizer
from anymodal.train.examples import IGNORE_INDEX
from anymodal.train.metrics import read_metrics
from anymodal.train.setup import read_data, tokenize_data
from anymodal.train.trainer import Trainer

COLOURS = {
    "red": (200, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 60, 200),
    "yellow": (230, 210, 40),
    "orange": (240, 140, 20),
    "purple": (130, 40, 160),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
}


@dataclass
class Run:
    """One way of training: a perf_counter stamp and the loss after every optimizer step."""

    name: str
    stamps: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    fill_s: float | None = None
    filled: int = 0

    def samples_per_s(self, batch_size: int) -> float:
        """Throughput over steps 2..N (the first step is warm-up: allocator, lazy imports)."""
        return (len(self.stamps) - 1) * batch_size / (self.stamps[-1] - self.stamps[0])

    def step_times(self) -> list[float]:
        """Seconds of steps 2..N, each."""
        return [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]


# --- the workspace: images, conversations, LLM, config -------------------------------------------


def make_workspace(root: Path, args: argparse.Namespace) -> Path:
    """Write the PNGs, ``data.jsonl``, a tiny Llama and ``anymodal.yaml``; return the YAML file."""
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    records = []
    for index in range(args.images):
        colour = names[index % len(names)]
        image = Image.new("RGB", (320, 240), COLOURS[colour])
        draw = ImageDraw.Draw(image)
        for _ in range(6):  # a few shapes in other colours, so the pictures differ
            x, y = int(rng.integers(0, 280)), int(rng.integers(0, 200))
            w, h = int(rng.integers(20, 120)), int(rng.integers(20, 100))
            fill = COLOURS[names[int(rng.integers(0, len(names)))]]
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + w, y + h), fill=fill)
        noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (240, 320, 3))
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(root / f"img_{index}.png")
        records.append(
            {
                "image": f"img_{index}.png",
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat colour is the background?"},
                    {"from": "gpt", "value": f"The background is {colour}."},
                ],
            }
        )
    (root / "data.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))

    tokenizer = train_bpe_tokenizer()
    llm = tiny_llama(
        len(tokenizer),
        hidden_size=args.llm_hidden,
        num_layers=args.llm_layers,
        num_heads=max(1, args.llm_hidden // 32),
        num_kv_heads=max(1, args.llm_hidden // 64),
        intermediate_size=args.llm_hidden * 3,
    )
    llm.save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")

    vision = {
        "vision_embed_dim": args.vision_dim,
        "vision_num_blocks": args.vision_blocks,
        "vision_num_heads": args.vision_heads,
        "image_size": 224,
    }
    file = root / "anymodal.yaml"
    file.write_text(
        f"""\
model:
  llm: {{path: {root / "llm"}}}
  template: plain
  modalities:
    image:
      encoder: {{options: {{preset: huge, config: {json.dumps(vision)}}}}}
train:
  stage: 1
  data: {{train: {root / "data.jsonl"}}}
  batch_size: {args.batch_size}
  max_steps: {args.steps}
  max_grad_norm: 0
  optimizer: {{lr: 0.001}}
  schedule: {{warmup_steps: 0, decay: constant}}
  log_every: 1000
  save_every: 0
  seed: 0
"""
    )
    return file


# --- 1. the reference loop ----------------------------------------------------------------------


def reference(loaded: LoadedConfig, registry: Registry, steps: int, name: str) -> Run:
    """The plain loop: decode, preprocess, encode, project, fill the prompt, LLM, backward, step."""
    config, train = loaded.config, loaded.config.train
    torch.manual_seed(train.seed)  # as the Trainer does before building: the same random weights
    model = AnyModalModel.from_config(config.model, registry)
    records = read_data(config, registry)
    examples = tokenize_data(records, config, model, model.prompt_processor(registry)).train
    spec = registry.get("modality", "image")
    options = dict(config.model.modalities["image"].preprocess)
    encoder, projector = model.encoders["image"], model.projectors["image"]
    llm: Any = model.llm  # a transformers LlamaForCausalLM: its API is too dynamic for mypy
    embed = llm.get_input_embeddings()
    pad = model.bridge.pad_token_id
    model.requires_grad_(False)
    projector.float().requires_grad_(True)
    optimizer = torch.optim.AdamW(
        projector.parameters(),
        lr=train.optimizer.lr,
        betas=(train.optimizer.betas[0], train.optimizer.betas[1]),
        eps=train.optimizer.eps,
        weight_decay=train.optimizer.weight_decay,
    )
    model.train()
    encoder.eval()
    run = Run(name)
    size = train.batch_size
    epoch = 0
    while len(run.losses) < steps:
        generator = torch.Generator().manual_seed(train.seed + epoch)
        order = torch.randperm(len(examples), generator=generator).tolist()
        for start in range(0, len(order), size):
            rows = [examples[i] for i in order[start : start + size]]
            pixels = torch.stack(
                [spec.preprocess(spec.loader(ref.path), **options) for row in rows for ref in row.media]
            )
            with torch.no_grad():
                encoded = encoder(pixels)
            projected = projector(encoded)  # [inputs, tokens, hidden]
            length = max(len(row.input_ids) for row in rows)
            ids = torch.full((len(rows), length), pad, dtype=torch.long)
            labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((len(rows), length), dtype=torch.long)
            for b, row in enumerate(rows):
                ids[b, : len(row.input_ids)] = torch.tensor(row.input_ids)
                labels[b, : len(row.labels)] = torch.tensor(row.labels)
                mask[b, : len(row.input_ids)] = 1
            embeds = embed(ids)
            offset = 0
            for b, row in enumerate(rows):
                for slot in row.slots:
                    index = offset + slot.input_indices[0]
                    embeds[b, slot.start : slot.start + slot.length] = projected[index]
                offset += len(row.media)
            loss = llm(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            run.losses.append(loss.item())
            run.stamps.append(time.perf_counter())
            if len(run.losses) == steps:
                break
        epoch += 1
    return run


# --- 2 and 3. anymodal's Trainer ----------------------------------------------------------------


def with_trainer(
    yaml_file: Path, registry: Registry, output_dir: Path, cache: Path | None, name: str
) -> tuple[Run, float | None]:
    """One Trainer run; returns it and the samples/s that ``metrics.jsonl`` time stamps give."""
    overrides = [f"train.output_dir={output_dir}"]
    if cache is not None:
        overrides.append(f"train.feature_cache={cache}")
    loaded = load_config(yaml_file, overrides, registry=registry)
    trainer = Trainer(loaded, registry, log=lambda line: None)
    run = Run(name)
    if trainer.cache is not None:
        refs = [ref for example in trainer.data.train for ref in example.media]
        start = time.perf_counter()
        run.filled = trainer.cache.fill(refs, loaded.config.train.batch_size)
        run.fill_s = time.perf_counter() - start

    def on_step(step: int, loss: float) -> None:
        run.stamps.append(time.perf_counter())
        run.losses.append(loss)

    trainer.fit(on_step=on_step)
    steps = [record for record in read_metrics(output_dir) if "samples_per_s" in record]
    span = steps[-1]["time"] - steps[0]["time"]
    from_metrics = (len(steps) - 1) * loaded.config.train.batch_size / span if span > 0 else None
    return run, from_metrics


# --- --gpu-7b -----------------------------------------------------------------------------------


def stage2_throughput(
    device: str,
    *,
    hidden: int = 4096,
    layers: int = 32,
    heads: int = 32,
    intermediate: int = 11008,
    vocab: int = 32000,
    feature_dim: int = 1024,
    batch: int = 4,
    seq: int = 1024,
    steps: int = 10,
    warmup: int = 2,
    checkpointing: bool = False,
) -> dict[str, float]:
    """Stage-2 steps on a random bf16 Llama: tokens/s and peak memory (GiB, CUDA only)."""
    on_cuda = device.startswith("cuda")
    config = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max(4096, seq),
    )
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.device(device):
        base: Any = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    base.requires_grad_(False)
    # Through the hf bridge, so LoRA and checkpointing are set up exactly as `anymodal train` does;
    # the tokenizer is only there to satisfy the bridge (inputs here are random ids).
    bridge = HFBridge(base, train_bpe_tokenizer())
    if checkpointing:
        bridge.enable_gradient_checkpointing()
    bridge.add_lora(anymodal.LoraSettings())  # PandaGPT's r=32, alpha=32, dropout 0.1 on q/k/v/o
    llm: Any = bridge.module  # adapter weights in float32, as anymodal trains them
    projector = torch.nn.Linear(feature_dim, hidden, device=device)  # float32, trainable
    trainable = [p for p in llm.parameters() if p.requires_grad] + list(projector.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    if on_cuda:
        torch.cuda.synchronize()
    build_s = time.perf_counter() - start
    weights_gib = torch.cuda.memory_allocated() / 2**30 if on_cuda else math.nan
    llm.train()
    generator = torch.Generator(device=device).manual_seed(1)
    ids = torch.randint(0, vocab, (batch, seq), device=device, generator=generator)
    features = torch.randn(batch, feature_dim, device=device, generator=generator)
    labels = ids.clone()
    labels[:, :2] = IGNORE_INDEX  # bos and the input's position
    mask = torch.ones_like(ids)
    embed = llm.get_input_embeddings()
    times = []
    for index in range(warmup + steps):
        if on_cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast(device_type="cuda" if on_cuda else "cpu", dtype=torch.bfloat16):
            text = embed(ids)
            projected = projector(features).unsqueeze(1).to(text.dtype)
            embeds = torch.cat([text[:, :1], projected, text[:, 2:]], dim=1)
            loss = llm(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if on_cuda:
            torch.cuda.synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - started)
    parameters = sum(p.numel() for p in llm.parameters())
    return {
        "parameters": parameters,
        "trainable": sum(p.numel() for p in trainable),
        "build_s": build_s,
        "step_s": statistics.median(times),
        "tokens_per_s": batch * seq / statistics.median(times),
        "weights_gib": weights_gib,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if on_cuda else math.nan,
    }


def gpu_7b(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available():
        raise SystemExit(
            f"--gpu-7b needs a CUDA GPU, and torch {torch.__version__} sees none here "
            "(torch.cuda.is_available() is False); nothing was measured"
        )
    torch.cuda.reset_peak_memory_stats()
    result = stage2_throughput(
        "cuda", batch=args.gpu_batch, seq=args.gpu_seq, steps=args.gpu_steps, checkpointing=args.checkpointing
    )
    name = torch.cuda.get_device_name()
    print(
        f"stage 2 on {name}: Llama with 7B shapes ({result['parameters'] / 1e9:.2f}B params incl. LoRA), "
        f"random bf16 weights, LoRA r=32 q/k/v/o + Linear(1024, 4096), bf16 autocast, batch "
        f"{args.gpu_batch} x {args.gpu_seq} tokens, gradient checkpointing "
        f"{'on' if args.checkpointing else 'off'}, median of {args.gpu_steps} steps"
    )
    print("| trainable | build (s) | step (s) | tokens/s | weights (GiB) | peak allocated (GiB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    r = result
    print(
        f"| {r['trainable'] / 1e6:.1f}M | {r['build_s']:.1f} | {r['step_s']:.3f} | "
        f"{r['tokens_per_s']:.0f} | {r['weights_gib']:.2f} | {r['peak_gib']:.2f} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24, help="optimizer steps per way of training")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=64, help="PNG files (320x240) in the data set")
    parser.add_argument("--vision-dim", type=int, default=256, help="ImageBind vision_embed_dim")
    parser.add_argument("--vision-blocks", type=int, default=6)
    parser.add_argument("--vision-heads", type=int, default=4)
    parser.add_argument("--llm-hidden", type=int, default=256, help="tiny Llama hidden size")
    parser.add_argument("--llm-layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="repeat all three, interleaved; best kept")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--gpu-7b", action="store_true", help="stage-2 tokens/s and peak memory, CUDA")
    parser.add_argument("--gpu-batch", type=int, default=4)
    parser.add_argument("--gpu-seq", type=int, default=1024)
    parser.add_argument("--gpu-steps", type=int, default=10)
    parser.add_argument("--checkpointing", action="store_true", help="--gpu-7b: gradient checkpointing")
    args = parser.parse_args()
    if args.gpu_7b:
        gpu_7b(args)
        return
    if args.images % args.batch_size:
        parser.error("--images must be a multiple of --batch-size (every step then has a full batch)")

    registry = load_registry()  # the image plugin comes from its entry point
    names = (
        "reference loop (re-encodes every step)",
        "Trainer, feature cache off",
        "Trainer, feature cache on (warm)",
    )
    runs: dict[str, list[Run]] = {name: [] for name in names}
    from_metrics: dict[str, list[float | None]] = {name: [] for name in names[1:]}
    with tempfile.TemporaryDirectory(prefix="anymodal-bench-") as directory:
        root = Path(directory)
        yaml_file = make_workspace(root, args)
        loaded = load_config(yaml_file, registry=registry)
        for round_ in range(args.rounds):  # interleaved, so a burst of load elsewhere hits all three
            runs[names[0]].append(reference(loaded, registry, args.steps, names[0]))
            for name, cache in ((names[1], None), (names[2], root / "cache")):
                run, rate = with_trainer(
                    yaml_file, registry, root / f"out-{round_}-{cache is None}", cache, name
                )
                runs[name].append(run)
                from_metrics[name].append(rate)

    load = os.getloadavg()
    size = args.batch_size
    # Best of the rounds: other load on the machine only ever slows a round down.
    rates = [max(run.samples_per_s(size) for run in runs[name]) for name in names]
    first = {name: runs[name][0] for name in names}
    loss_gap = max(abs(a - b) for a, b in zip(first[names[0]].losses, first[names[1]].losses, strict=True))
    cache_gap = max(abs(a - b) for a, b in zip(first[names[1]].losses, first[names[2]].losses, strict=True))
    filling = first[names[2]]
    epochs = args.steps * size / args.images
    print(
        f"stage 1 on {torch.get_num_threads()} CPU threads, torch {torch.__version__}: {args.images} "
        f"PNGs (320x240), batch {size}, {args.steps} steps ({epochs:.1f} epochs), timed over steps "
        f"2..{args.steps}, best of {args.rounds} round(s); ImageBind vision {args.vision_dim}-d x "
        f"{args.vision_blocks} blocks x {args.vision_heads} heads (224 px), Llama hidden "
        f"{args.llm_hidden} x {args.llm_layers} layers"
    )
    print(f"load average at the end (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")
    print("| training | samples/s | mean step (ms) | median step (ms) | ratio to reference |")
    print("|---|---:|---:|---:|---:|")
    for name, rate in zip(names, rates, strict=True):
        best = max(runs[name], key=lambda run: run.samples_per_s(size))
        median = statistics.median(best.step_times())
        print(
            f"| {name} | {rate:.2f} | {1e3 * size / rate:.0f} | {1e3 * median:.0f} | {rate / rates[0]:.2f} |"
        )
    print(f"cache on / cache off: {rates[2] / rates[1]:.2f}")
    fill_s = filling.fill_s or math.nan
    print(
        f"cache fill (not in the table): {filling.filled} inputs in {fill_s:.2f} s "
        f"({filling.filled / fill_s:.1f} inputs/s)"
    )
    print("every round, samples/s:")
    for name in names:
        ours = ", ".join(f"{run.samples_per_s(size):.2f}" for run in runs[name])
        stamped = ", ".join(f"{rate:.2f}" if rate else "n/a" for rate in from_metrics.get(name, []))
        print(f"  {name}: {ours}" + (f" (metrics.jsonl time stamps: {stamped})" if stamped else ""))
    print(f"largest loss difference: reference vs cache off {loss_gap:.1e}, cache off vs on {cache_gap:.1e}")
    if args.json:
        result = {
            "args": vars(args),
            "samples_per_s": dict(zip(names, rates, strict=True)),
            "ratios": {
                "off/reference": rates[1] / rates[0],
                "on/reference": rates[2] / rates[0],
                "on/off": rates[2] / rates[1],
            },
            "load_average": load,
            "cache_fill_s": filling.fill_s,
            "cache_filled": filling.filled,
            "rounds": {name: [run.samples_per_s(size) for run in runs[name]] for name in names},
            "step_s": {name: [run.step_times() for run in runs[name]] for name in names},
            "metrics_jsonl_samples_per_s": from_metrics,
            "losses": {name: first[name].losses for name in names},
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
