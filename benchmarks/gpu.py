"""GPU figures at the real shapes, random weights: ImageBind-huge's vision encode throughput, a
7B-shaped Llama's decode speed for one stream and for a batch of 16, and the time to the first
token of a prompt with one image and one audio clip.

Nothing is downloaded: speed and memory do not depend on the weights' values. Every model is built
directly on the device in the benchmark's dtype (bf16 by default), never as a float32 copy on the
CPU first. Each figure is the median over ``--repeats`` runs after one warm-up run, with
``torch.cuda.synchronize`` before every clock reading; peak GPU memory is
``torch.cuda.max_memory_allocated`` over the measurement's warm-up and runs, the weights resident
at that point included.

1. ``vision_encode``: ImageBind-huge's vision trunk (anymodal's ``imagebind`` encoder, options
   ``{"preset": "huge"}``; its attention is ``F.scaled_dot_product_attention``) on random
   preprocessed 224 px images ``[batch, 3, 224, 224]`` at each of ``--batches``: images/s.
2. ``decode_one``: the Llama (hidden 4096, 32 layers, 32 heads, MLP 11008, vocabulary 32000, the
   shape in ``pandagpt_7b.py``) decodes greedily from a ``--prompt``-position prompt's embeddings
   through the hf bridge's own loop, ``anymodal_hf.generation.decode_loop``, for exactly
   ``--new-tokens`` tokens (no end-of-sequence): tokens/s after the first token.
3. ``decode_batch``: the same model decodes 16 prompts at once in a plain greedy loop over
   transformers' forward with a KV cache (prefill, then one forward per step for all 16 rows, the
   argmax fed back without leaving the GPU): tokens/s over all rows after the prefill. This is the
   model's batched decode speed, the ceiling for serving 16 streams; it does not go through any
   anymodal scheduler.
4. ``first_token``: a random image through the vision trunk and a random audio clip
   ``[1, 3, 1, 128, 204]`` (three clips of 128 mel bins x 204 frames, ImageBind's audio input)
   through the audio trunk, each projected to 4096 by a linear projector (PandaGPT's), spliced
   with ``torch.cat`` into a ``--prompt``-token text prompt's embeddings, then prefill and the first
   token through ``decode_loop``: milliseconds, with each stage's share (the stages are
   synchronised one by one).

    python benchmarks/gpu.py [--repeats 3] [--json results.json]     # on a CUDA GPU
    python benchmarks/gpu.py --small --device cpu                    # tiny shapes: checks the script

``--small`` swaps in an ImageBind of toy widths (``anymodal.testing.TINY_IMAGEBIND``) and a tiny
Llama at the same input shapes, so the whole script runs on a CPU in seconds; its figures say
nothing about performance.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import torch
import transformers
from anymodal_hf.generation import ForwardArgs, decode_loop
from imagebind_encode import SHAPES
from pandagpt_7b import LLAMA_7B, LLAMA_TINY

import anymodal
from anymodal.encoders.imagebind.encoder import ImageBindEncoder
from anymodal.encoders.imagebind.spec import build_encoder
from anymodal.projectors.modules import LinearProjector
from anymodal.testing import TINY_IMAGEBIND

VOCAB = 32000
IMAGE_SHAPE = SHAPES["vision"]  # [3, 224, 224]
AUDIO_SHAPE = SHAPES["audio"]  # [3, 1, 128, 204]: three 2-second clips of 128 mel bins x 204 frames
DECODE_ROWS = 16


class Bench:
    """Where and how the measurements run: device, dtype, repeats, and the clock."""

    def __init__(self, device: str, dtype: torch.dtype, repeats: int) -> None:
        self.device, self.dtype, self.repeats = device, dtype, repeats
        self.cuda = device.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def now(self) -> float:
        self.sync()
        return time.perf_counter()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None

    def resident_gib(self) -> float | None:
        return torch.cuda.memory_allocated() / 2**30 if self.cuda else None

    def repeated(self, run: Callable[[], dict[str, float]]) -> dict[str, float]:
        """The median of each of ``run``'s figures over ``repeats`` runs after a warm-up run, and
        ``peak_gib`` over all of them."""
        self.reset_peak()
        run()  # warm-up: kernels chosen, allocator pools filled, lazy imports done
        runs = [run() for _ in range(self.repeats)]
        figures = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        peak = self.peak_gib()
        return figures if peak is None else {**figures, "peak_gib": peak}

    @contextmanager
    def building(self) -> Iterator[None]:
        """Modules constructed inside get their parameters on the device in the dtype at once."""
        default = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            with torch.device(self.device):
                yield
        finally:
            torch.set_default_dtype(default)


def build_llama(bench: Bench, small: bool) -> transformers.LlamaForCausalLM:
    shape = LLAMA_TINY if small else LLAMA_7B
    config = transformers.LlamaConfig(vocab_size=VOCAB, max_position_embeddings=2048, **shape)
    with bench.building():
        return transformers.LlamaForCausalLM(config).eval()


def build_imagebind(bench: Bench, modality: str, small: bool) -> ImageBindEncoder:
    """One ImageBind-huge trunk, as the ``imagebind`` encoder's options build it."""
    options = {"preset": "huge", "config": TINY_IMAGEBIND if small else {}}
    with bench.building():
        return build_encoder(modality, options).eval()


def vision_encode(bench: Bench, encoder: ImageBindEncoder, batch: int) -> dict[str, float]:
    images = torch.randn(batch, *IMAGE_SHAPE, device=bench.device, dtype=bench.dtype)

    def run() -> dict[str, float]:
        start = bench.now()
        with torch.inference_mode():
            encoder(images)
        seconds = bench.now() - start
        return {"images_per_s": batch / seconds, "ms_per_batch": seconds * 1e3}

    return {"batch": batch, **bench.repeated(run)}


def random_ids(rows: int, length: int, seed: int, device: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (rows, length), generator=generator).to(device)


def decode_one(bench: Bench, llm: Any, prompt: int, new_tokens: int) -> dict[str, float]:
    with torch.inference_mode():
        embeds = llm.get_input_embeddings()(random_ids(1, prompt, 1, bench.device))
    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=bench.device)
    config = anymodal.GenerationConfig(max_new_tokens=new_tokens)

    def run() -> dict[str, float]:
        start, stamps = bench.now(), []
        for _ in decode_loop(llm, embeds, mask, config, eos_token_ids=()):
            stamps.append(bench.now())
        assert len(stamps) == new_tokens
        steps = stamps[-1] - stamps[0]
        return {
            "tokens_per_s": (new_tokens - 1) / steps,
            "ms_per_token": steps / (new_tokens - 1) * 1e3,
            "first_token_ms": (stamps[0] - start) * 1e3,
        }

    return {"rows": 1, "prompt": prompt, "new_tokens": new_tokens, **bench.repeated(run)}


def decode_batch(bench: Bench, llm: Any, prompt: int, new_tokens: int) -> dict[str, float]:
    """Greedy decoding of DECODE_ROWS equal-length prompts in one plain loop over the forward."""
    ids = random_ids(DECODE_ROWS, prompt, 2, bench.device)
    names = ForwardArgs(llm)  # the KV cache's keyword differs across transformers versions
    keep = {"logits_to_keep": 1} if names.logits_to_keep else {}

    def run() -> dict[str, float]:
        start = bench.now()
        with torch.inference_mode():
            mask = torch.ones(ids.shape, dtype=torch.long, device=bench.device)
            out = llm(input_ids=ids, attention_mask=mask, use_cache=True, **keep)
            token = out.logits[:, -1].argmax(dim=-1, keepdim=True)
            prefilled = bench.now()
            for _ in range(new_tokens - 1):
                mask = torch.cat([mask, mask.new_ones((DECODE_ROWS, 1))], dim=1)
                cache = {names.cache: getattr(out, names.cache)}
                out = llm(input_ids=token, attention_mask=mask, use_cache=True, **cache)
                token = out.logits[:, -1].argmax(dim=-1, keepdim=True)
        steps = bench.now() - prefilled
        return {
            "tokens_per_s": DECODE_ROWS * (new_tokens - 1) / steps,
            "tokens_per_s_per_row": (new_tokens - 1) / steps,
            "ms_per_step": steps / (new_tokens - 1) * 1e3,
            "prefill_ms": (prefilled - start) * 1e3,
        }

    return {"rows": DECODE_ROWS, "prompt": prompt, "new_tokens": new_tokens, **bench.repeated(run)}


def first_token(
    bench: Bench,
    llm: Any,
    vision: ImageBindEncoder,
    audio: ImageBindEncoder,
    projectors: tuple[LinearProjector, LinearProjector],
    prompt: int,
) -> dict[str, float]:
    image = torch.randn(1, *IMAGE_SHAPE, device=bench.device, dtype=bench.dtype)
    clip = torch.randn(1, *AUDIO_SHAPE, device=bench.device, dtype=bench.dtype)
    ids = random_ids(1, prompt, 3, bench.device)
    split = min(8, prompt)  # a system line and "USER:" before the inputs, the question after
    config = anymodal.GenerationConfig(max_new_tokens=1)
    embedding = llm.get_input_embeddings()

    def run() -> dict[str, float]:
        start = bench.now()
        with torch.inference_mode():
            seen = projectors[0](vision(image))  # [1, 1, hidden]
            encoded_image = bench.now()
            heard = projectors[1](audio(clip))
            encoded_audio = bench.now()
            text = embedding(ids)
            embeds = torch.cat([text[:, :split], seen, heard, text[:, split:]], dim=1)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=bench.device)
        next(decode_loop(llm, embeds, mask, config, eos_token_ids=()))
        end = bench.now()
        return {
            "ms": (end - start) * 1e3,
            "image_encode_ms": (encoded_image - start) * 1e3,
            "audio_encode_ms": (encoded_audio - encoded_image) * 1e3,
            "prefill_ms": (end - encoded_audio) * 1e3,
        }

    return {"prompt": prompt, "positions": prompt + 2, **bench.repeated(run)}


def device_name(bench: Bench) -> str:
    if bench.cuda:
        return torch.cuda.get_device_name(bench.device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def table(results: dict[str, Any]) -> str:
    def gib(row: dict[str, Any]) -> str:
        return f"{row['peak_gib']:.2f}" if "peak_gib" in row else "-"

    cuda = f" (CUDA {results['cuda']})" if results["cuda"] else ""
    lines = [
        f"{results['shapes']}, random weights, {results['dtype']} on {results['device']}",
        f"torch {results['torch']}{cuda}, transformers {results['transformers']}, "
        f"LLM attention {results['llm_attention']}; median of {results['repeats']} after a warm-up",
        "",
        "| measurement | shape | result | detail | peak GiB |",
        "|---|---|---:|---|---:|",
    ]
    m = results["measurements"]
    for row in m["vision_encode"]:
        lines.append(
            f"| ImageBind vision encode | batch {row['batch']}, 224 px | {row['images_per_s']:.1f} images/s "
            f"| {row['ms_per_batch']:.1f} ms/batch | {gib(row)} |"
        )
    one, batch, first = m["decode_one"], m["decode_batch"], m["first_token"]
    lines += [
        f"| Llama decode, anymodal decode_loop | 1 stream, prompt {one['prompt']}, {one['new_tokens']} new "
        f"| {one['tokens_per_s']:.1f} tokens/s | {one['ms_per_token']:.2f} ms/token | {gib(one)} |",
        f"| Llama decode, batched forward loop | {batch['rows']} rows, prompt {batch['prompt']}, "
        f"{batch['new_tokens']} new | {batch['tokens_per_s']:.1f} tokens/s "
        f"| {batch['tokens_per_s_per_row']:.1f} tokens/s per row, prefill {batch['prefill_ms']:.1f} ms "
        f"| {gib(batch)} |",
        f"| first token, image + audio + text | {first['positions']} positions | {first['ms']:.1f} ms "
        f"| image {first['image_encode_ms']:.1f}, audio {first['audio_encode_ms']:.1f}, "
        f"prefill {first['prefill_ms']:.1f} ms | {gib(first)} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda if there is one")
    parser.add_argument("--small", action="store_true", help="tiny models at the same input shapes")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32], help="vision batch sizes")
    parser.add_argument("--prompt", type=int, default=64, help="text prompt length in tokens")
    parser.add_argument("--new-tokens", type=int, help="decoded tokens per run (128; 8 with --small)")
    args = parser.parse_args(argv)
    if args.new_tokens is None:
        args.new_tokens = 8 if args.small else 128
    if args.repeats < 1 or args.new_tokens < 2 or args.prompt < 1:
        parser.error("--repeats and --prompt must be at least 1, --new-tokens at least 2")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA GPU is visible to torch here")
    if device == "cpu" and not args.small:
        sys.exit(
            "the real shapes (ImageBind-huge, a 7B Llama) need a CUDA GPU, and none is visible here: "
            "run on a GPU, or pass --small to run tiny models on the CPU (checks the script only)"
        )

    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    bench = Bench(device, getattr(torch, args.dtype), args.repeats)
    measurements: dict[str, Any] = {}
    resident: dict[str, float | None] = {}

    # Built one after another, so each peak holds only what its measurement needs.
    vision = build_imagebind(bench, "image", args.small)
    resident["vision"] = bench.resident_gib()
    measurements["vision_encode"] = [vision_encode(bench, vision, batch) for batch in args.batches]

    llm = build_llama(bench, args.small)
    resident["vision_llm"] = bench.resident_gib()
    measurements["decode_one"] = decode_one(bench, llm, args.prompt, args.new_tokens)
    measurements["decode_batch"] = decode_batch(bench, llm, args.prompt, args.new_tokens)

    audio = build_imagebind(bench, "audio", args.small)
    with bench.building():
        hidden = llm.config.hidden_size
        projectors = (LinearProjector(vision.geometry, hidden), LinearProjector(audio.geometry, hidden))
    resident["vision_audio_llm"] = bench.resident_gib()
    measurements["first_token"] = first_token(bench, llm, vision, audio, projectors, args.prompt)

    results = {
        "date": date.today().isoformat(),
        "device": device_name(bench),
        "device_type": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if bench.cuda else None,
        "transformers": transformers.__version__,
        "dtype": args.dtype,
        "small": args.small,
        "shapes": "tiny models (--small)" if args.small else "ImageBind-huge, a 7B-shaped Llama",
        "repeats": args.repeats,
        "llm_attention": getattr(llm.config, "_attn_implementation", None) or "default",
        "imagebind_attention": "F.scaled_dot_product_attention",
        "parameters_m": {
            "vision": sum(p.numel() for p in vision.parameters()) / 1e6,
            "audio": sum(p.numel() for p in audio.parameters()) / 1e6,
            "llm": sum(p.numel() for p in llm.parameters()) / 1e6,
        },
        "resident_gib": resident,
        "measurements": measurements,
    }
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
