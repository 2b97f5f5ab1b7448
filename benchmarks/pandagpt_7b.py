"""A PandaGPT-7B-shaped model in bf16 on a GPU: time to first token, tokens/s and peak memory of an
image question through anymodal, against transformers' generate on the same prompt embeddings.

The model has PandaGPT's shape with random weights (no download; speed and memory do not depend
on the values): Llama 7B (hidden 4096, 32 layers, 32 heads, MLP 11008, 32000-token vocabulary)
with LoRA r=32 on q/k/v/o, ImageBind-huge's vision trunk, a linear projection 1024 -> 4096, the
``pandagpt`` template and its single summed input token. Decoding is greedy and exactly
``--new-tokens`` long (end-of-sequence is switched off: random weights would stop anywhere).
Medians over ``--repeats`` after a warm-up; the image is encoded afresh each time.

    python benchmarks/pandagpt_7b.py [--new-tokens 128] [--repeats 3]
    python benchmarks/pandagpt_7b.py --tiny          # toy shapes, on the CPU: checks the script runs
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from threading import Thread
from typing import Any

import torch
import transformers
from anymodal_hf.bridge import HFBridge

from anymodal.config.schema import AnymodalConfig, GenerationSettings, ModalityConfig, ModelConfig
from anymodal.contract.registry import load_registry
from anymodal.contract.specs import LoraSettings, Message
from anymodal.encoders.imagebind.encoder import ImageBindEncoder
from anymodal.encoders.imagebind.spec import ImageBindOptions
from anymodal.projectors.modules import LinearProjector
from anymodal.runtime.chat import ChatSession
from anymodal.runtime.model import AnyModalModel, scatter_embeddings
from anymodal.runtime.processor import Attachment, Turn
from anymodal.testing import TINY_IMAGEBIND, train_bpe_tokenizer

IMAGE = Path(__file__).resolve().parents[1] / "examples" / "red_circle.png"
QUESTION = "What is in this picture?"
LLAMA_7B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "intermediate_size": 11008,
}
LLAMA_TINY: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
}


def build(tiny: bool, device: str, new_tokens: int) -> tuple[ChatSession, Any, Any]:
    """The session, the Hugging Face model inside it and its tokenizer, on ``device`` in bf16
    (float32 for --tiny)."""
    dtype = torch.float32 if tiny else torch.bfloat16
    tokenizer = train_bpe_tokenizer()
    # Filler tokens up to LLaMA's 32000, so that whatever id random weights pick decodes to text.
    tokenizer.add_tokens([f" w{index}" for index in range(32000 - len(tokenizer))])
    shape = LLAMA_TINY if tiny else LLAMA_7B
    config = transformers.LlamaConfig(vocab_size=32000, max_position_embeddings=2048, **shape)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are created in bf16, never as a float32 copy
    try:
        with torch.device(device):
            llm = transformers.LlamaForCausalLM(config).eval()
            imagebind = ImageBindOptions(config=TINY_IMAGEBIND if tiny else {}).image_bind_config()
            encoder = ImageBindEncoder(imagebind, "vision").eval()
            projector = LinearProjector(encoder.geometry, config.hidden_size)
    finally:
        torch.set_default_dtype(default)
    llm.generation_config.eos_token_id = None  # exactly new_tokens tokens
    bridge = HFBridge(llm, tokenizer)
    bridge.add_lora(LoraSettings())
    bridge.eos_token_id = None
    registry = load_registry()
    settings = ModelConfig(template="pandagpt", fusion="sum", modalities={"image": ModalityConfig()})
    model = AnyModalModel(
        settings, bridge, {"image": registry.modalities["image"]}, {"image": encoder}, {"image": projector}
    )
    model.requires_grad_(False)
    whole = AnymodalConfig(model=settings, generation=GenerationSettings(max_new_tokens=new_tokens))
    return ChatSession.for_model(model, whole, registry), bridge.module, tokenizer


def timed(run: Callable[[], Iterator[str]], device: str, repeats: int) -> tuple[float, float, int]:
    """Median seconds to the first text and to the end, and the peak memory in bytes."""
    run_once = list(run())  # warm-up
    del run_once
    first, total = [], []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        start = time.perf_counter()
        pieces = run()
        next(pieces)
        first.append(time.perf_counter() - start)
        for _ in pieces:
            pass
        total.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    return statistics.median(first), statistics.median(total), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="toy shapes on the CPU, to check the script")
    args = parser.parse_args()
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU (or --tiny for a CPU check of the script)")
    torch.set_grad_enabled(False)
    session, llm, tokenizer = build(args.tiny, device, args.new_tokens)
    model = session.model
    static = torch.cuda.memory_allocated() if device == "cuda" else 0

    def ours() -> Iterator[str]:
        session.reset()
        session._cache.clear()  # encode the image afresh, as a chat's first turn does
        session.attach("image", IMAGE)
        return session.ask(QUESTION)

    def by_hand() -> Iterator[str]:
        prepared = model.prepare("image", IMAGE)
        (projected,) = model.encode([prepared])
        prompt = session.processor.process([Turn(Message("user", QUESTION), (Attachment("image", 1),))])
        ids = torch.tensor([prompt.input_ids], device=device)
        embeds = scatter_embeddings(llm.get_input_embeddings()(ids), [prompt.slots], [[projected]])
        streamer = transformers.TextIteratorStreamer(tokenizer, skip_prompt=True)
        settings = {
            "inputs_embeds": embeds,
            "attention_mask": torch.ones(ids.shape, dtype=torch.long, device=device),
            "max_new_tokens": args.new_tokens,
            "min_new_tokens": args.new_tokens,
            "do_sample": False,
            "streamer": streamer,
            "pad_token_id": model.bridge.pad_token_id,
        }
        Thread(target=llm.generate, kwargs=settings).start()
        return (piece for piece in streamer if piece)

    rows = [
        ("anymodal", *timed(ours, device, args.repeats)),
        ("transformers", *timed(by_hand, device, args.repeats)),
    ]
    name = "tiny (CPU check)" if args.tiny else torch.cuda.get_device_name()
    print(f"PandaGPT-7B shape, bf16, {name}, {args.new_tokens} new tokens, median of {args.repeats}")
    print(f"weights and buffers resident: {static / 2**30:.2f} GiB")
    print("| path | first token s | tokens/s | peak GiB |")
    print("|---|---:|---:|---:|")
    for label, first, total, peak in rows:
        rate = (args.new_tokens - 1) / (total - first)
        print(f"| {label} | {first:.3f} | {rate:.1f} | {peak / 2**30:.2f} |")
    ratio = (rows[0][2] - rows[0][1]) / (rows[1][2] - rows[1][1])
    print(f"decoding time, anymodal / transformers: {ratio:.2f}")


if __name__ == "__main__":
    main()
