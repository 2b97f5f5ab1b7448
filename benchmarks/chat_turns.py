"""Five chat turns on a Llama-shaped model with ImageBind-huge's trunks: PandaGPT's loop against
anymodal without and with the LLM's KV cache kept across turns.

The model has random weights at shapes where the prompt's prefill matters on a CPU: a Llama of
hidden 1024, 12 layers, 16 heads, MLP 2816 (over the tiny BPE tokenizer's 512 ids), and
ImageBind-huge's vision and audio trunks (632 M and 86 M parameters), each through a linear
projector into the LLM's space; the prompt template is ``plain``. Turn one attaches an image and
a sound; every reply is 24 tokens (greedy, no EOS). Three ways, in one process, on the same loaded model:

a. ``pandagpt``: PandaGPT's loop: every turn encodes every input of the conversation again and
   runs the LLM over the whole prompt (anymodal with its caches of encodings and KV emptied
   before each turn, which is that work);
b. ``no-reuse``: anymodal with ``generation.kv_cache_mb=0``: each input encoded once, the whole
   prompt run every turn;
c. ``reuse``: anymodal as shipped: each turn runs only the positions after what the last kept.

For each: the time to the first token and the whole time of every turn, and the replies, which
must be the same token for token. ``--history 2000`` puts a text of about that many tokens in turn
one, for the case of a long conversation. ``--memory`` instead runs 20 turns in fresh processes,
with and without reuse and with a small cap, and reports peak resident memory and the store's size.

    python benchmarks/chat_turns.py [--history 2000] [--turns 5] [--memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
QUESTIONS = [
    "What do you see and hear?",
    "What colour is the shape?",
    "Is the sound high or low?",
    "Where is the shape?",
    "Describe everything again, briefly.",
]
LLM: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 12,
    "num_attention_heads": 16,
    "intermediate_size": 2816,
}
REPLY_TOKENS = 24


def write_llm(directory: Path) -> Path:
    """A random Llama of the shape above, with the tiny BPE tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from anymodal.testing import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer()
    tokenizer.eos_token = None  # no EOS, in the tokenizer or the model: every reply is REPLY_TOKENS long
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        num_key_value_heads=LLM["num_attention_heads"],
        max_position_embeddings=8192,
        bos_token_id=1,
        eos_token_id=None,
        pad_token_id=3,
        **LLM,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_config(folder: Path, llm: Path, kv_cache_mb: float) -> Path:
    modality = "{encoder: {name: imagebind, options: {preset: huge}}, projector: {name: linear}}"
    path = folder / f"chat-{kv_cache_mb:g}.yaml"
    path.write_text(
        f"model:\n  llm: {{path: {llm}}}\n  template: plain\n  device: cpu\n  dtype: float32\n"
        f"  modalities: {{image: {modality}, audio: {modality}}}\n"
        f"generation: {{max_new_tokens: {REPLY_TOKENS}, kv_cache_mb: {kv_cache_mb}}}\n"
    )
    return path


def converse(session: Any, history: str, turns: int, forget: bool) -> list[dict[str, Any]]:
    """Ask the questions; per turn the seconds to the reply's first token and to its end, and the
    reply's token ids (random weights spell no words, and text can wait for a whole character)."""
    bridge = session.model.bridge
    generate_ids = type(bridge).generate_ids
    seen: dict[str, Any] = {}

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        for token in generate_ids(self, *args, **kwargs):
            seen.setdefault("first", time.perf_counter())
            seen["ids"].append(token)
            yield token

    bridge.generate_ids = timed.__get__(bridge)
    session.attach("image", EXAMPLES / "red_circle.png")
    session.attach("audio", EXAMPLES / "low_rising_tone.wav")
    timings = []
    try:
        for number, question in enumerate(QUESTIONS[:turns]):
            if forget:  # PandaGPT's loop: nothing carried from the turn before
                session._cache.clear()
            text = f"{history}\n{question}" if number == 0 and history else question
            seen.clear()
            seen["ids"] = []
            start = time.perf_counter()
            "".join(session.ask(text))
            end = time.perf_counter()
            timings.append({"first_s": seen["first"] - start, "total_s": end - start, "reply": seen["ids"]})
    finally:
        del bridge.generate_ids
    return timings


def long_text(tokens: int, tokenize: Any) -> str:
    sentence = "The red circle and the low tone rise slowly across the quiet white picture. "
    text = sentence
    while len(tokenize(text)) < tokens:
        text += sentence
    return text


def compare(args: argparse.Namespace, folder: Path, llm: Path) -> dict[str, Any]:
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.chat import ChatSession
    from anymodal.runtime.prefix_cache import PrefixStore

    registry = get_registry()
    loaded = load_config(write_config(folder, llm, 0), [], registry)
    session = ChatSession.from_config(loaded.config, registry)
    history = long_text(args.history, session.model.bridge.tokenize) if args.history else ""
    results = {}
    for way, reuse, forget in (("pandagpt", False, True), ("no-reuse", False, False), ("reuse", True, False)):
        for turns in (1, args.turns):  # a warm-up turn, then the measured conversation
            session.reset()
            session._cache.clear()
            session.prefixes = PrefixStore(4096 * 2**20) if reuse else None
            results[way] = converse(session, history, turns, forget)
    return results


def memory_child(config: str, turns: int) -> dict[str, Any]:
    """In a fresh process: ``turns`` turns (the questions over again), peak memory and the store."""
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry
    from anymodal.runtime.chat import ChatSession

    registry = get_registry()
    session = ChatSession.from_config(load_config(config, [], registry).config, registry)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    session.attach("image", EXAMPLES / "red_circle.png")
    session.attach("audio", EXAMPLES / "low_rising_tone.wav")
    for number in range(turns):
        "".join(session.ask(QUESTIONS[number % len(QUESTIONS)]))
    store = session.prefixes
    return {
        "loaded_mib": round(loaded, 1),
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "store_mib": None if store is None else round(store.nbytes / 2**20, 2),
        "cap_mib": None if store is None else round(store.max_bytes / 2**20, 2),
        "hits": None if store is None else store.hits,
    }


def memory(folder: Path, llm: Path, turns: int) -> dict[str, Any]:
    found = {}
    for name, cap in (("no-reuse", 0), ("reuse, 1024 MB cap", 1024), ("reuse, 64 MB cap", 64)):
        config = write_config(folder, llm, cap)
        done = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(config), "--turns", str(turns)],
            capture_output=True,
            text=True,
            check=True,
        )
        found[name] = json.loads(done.stdout.splitlines()[-1])
    return found


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    turns = len(results["reuse"])
    lines = ["| turn | " + " | ".join(f"{way} first / total (s)" for way in results) + " | (a)/(c) first |"]
    lines.append("|---:|" + "---:|" * (len(results) + 1))
    for index in range(turns):
        cells = [f"{r[index]['first_s']:.3f} / {r[index]['total_s']:.3f}" for r in results.values()]
        ratio = results["pandagpt"][index]["first_s"] / results["reuse"][index]["first_s"]
        lines.append(f"| {index + 1} | " + " | ".join(cells) + f" | {ratio:.1f} |")
    totals = [sum(t["total_s"] for t in r) for r in results.values()]
    lines.append("| all | " + " | ".join(f"{total:.2f}" for total in totals) + " | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--history", type=int, default=0, help="tokens of text in turn one")
    parser.add_argument("--memory", action="store_true", help="peak memory over --turns (20) turns instead")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.turns)))
        return
    with tempfile.TemporaryDirectory(prefix="anymodal-chat-bench-") as name:
        folder = Path(name)
        llm = write_llm(folder / "llm")
        if args.memory:
            print(json.dumps(memory(folder, llm, args.turns if args.turns != 5 else 20), indent=2))
            return
        results = compare(args, folder, llm)
    replies = {way: [t["reply"] for t in turns] for way, turns in results.items()}
    same = replies["pandagpt"] == replies["no-reuse"] == replies["reuse"]
    print(table(results))
    print(f"replies identical across the three: {same}")
    reuse, plain, panda = results["reuse"], results["no-reuse"], results["pandagpt"]
    last = len(reuse) - 1
    print(
        json.dumps(
            {
                "turn5_first_pandagpt_over_reuse": round(panda[last]["first_s"] / reuse[last]["first_s"], 2),
                "turn5_first_over_turn2_first_reuse": round(reuse[last]["first_s"] / reuse[1]["first_s"], 2),
                "total_no_reuse_over_reuse": round(
                    sum(t["total_s"] for t in plain) / sum(t["total_s"] for t in reuse), 2
                ),
            }
        )
    )
    if not same:
        for way, ids in replies.items():
            print(way, ids)
        sys.exit("the replies differ")


if __name__ == "__main__":
    main()
