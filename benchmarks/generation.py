"""Decode speed of the hf bridge's streaming loop against transformers' own ``generate``.

Both decode the same random Llama greedily from the same ``inputs_embeds`` (the way anymodal
always calls an LLM), for the same number of new tokens with EOS ignored, on the same device, in
one process. Reports time to first token and tokens per second for each, and their ratio.

    python benchmarks/generation.py                       # CPU, a ~60M-parameter Llama
    python benchmarks/generation.py --device cuda --dtype bfloat16 --hidden 4096 --layers 32
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import transformers
from anymodal_hf.generation import decode_loop

import anymodal


def build(
    hidden: int, layers: int, vocab: int, device: str, dtype: torch.dtype
) -> transformers.LlamaForCausalLM:
    config = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3 // 64 * 64 or 64,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    torch.nn.Module.to(model, device=device, dtype=dtype)  # transformers wraps .to() in an untyped decorator
    return model.eval()


def timed(run: Callable[[], list[float]], repeats: int) -> tuple[float, float]:
    """Median (time to first token, tokens/s after the first) over ``repeats`` runs."""
    first, rates = [], []
    for _ in range(repeats):
        stamps = run()
        first.append(stamps[0])
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    return statistics.median(first), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--prompt", type=int, default=64, help="prompt length in positions")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    dtype = getattr(torch, args.dtype)
    model = build(args.hidden, args.layers, args.vocab, args.device, dtype)
    ids = torch.randint(0, args.vocab, (1, args.prompt), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids.to(args.device))
    mask = torch.ones(ids.shape, dtype=torch.long, device=args.device)
    config = anymodal.GenerationConfig(max_new_tokens=args.new_tokens)

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def ours() -> list[float]:
        start, stamps = time.perf_counter(), []
        for _ in decode_loop(model, embeds, mask, config, eos_token_ids=()):
            sync()
            stamps.append(time.perf_counter() - start)
        return stamps

    class Stamper(transformers.generation.streamers.BaseStreamer):
        def __init__(self) -> None:
            self.start, self.prompt_seen = time.perf_counter(), False
            self.stamps: list[float] = []

        def put(self, value: torch.Tensor) -> None:
            if not self.prompt_seen:  # generate's first put() is the prompt, not a new token
                self.prompt_seen = True
                return
            sync()
            self.stamps.append(time.perf_counter() - self.start)

        def end(self) -> None:
            pass

    def reference() -> list[float]:
        streamer = Stamper()
        with torch.inference_mode():
            model.generate(
                inputs_embeds=embeds,
                attention_mask=mask,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
                streamer=streamer,
            )
        return streamer.stamps

    ours(), reference()  # warm-up: allocator, kernels, lazy imports
    our_first, our_rate = timed(ours, args.repeats)
    ref_first, ref_rate = timed(reference, args.repeats)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"model: Llama {params:.0f}M params, hidden {args.hidden}, {args.layers} layers, "
        f"{args.dtype} on {args.device}"
    )
    print(f"prompt {args.prompt} positions, {args.new_tokens} new tokens, median of {args.repeats}")
    print("| decoder | first token (ms) | tokens/s |")
    print("|---|---:|---:|")
    print(f"| anymodal-hf decode_loop | {our_first * 1e3:.1f} | {our_rate:.1f} |")
    print(f"| transformers generate | {ref_first * 1e3:.1f} | {ref_rate:.1f} |")
    print(f"| ratio (ours / generate) | {our_first / ref_first:.2f} | {our_rate / ref_rate:.2f} |")


if __name__ == "__main__":
    main()
