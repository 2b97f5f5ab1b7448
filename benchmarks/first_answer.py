"""How soon the built-in demo model starts answering, against the same work wired by hand.

Two measurements, in one run:

1. Warm (the model loaded, as in an interactive chat): for one sample file per modality, the time
   from attaching the file and asking to the reply's first text, and to its end, through
   ``ChatSession`` (what ``anymodal chat`` runs). The reference does the same work by hand from
   the same loaded parts: the plugin's loader and preprocessor, the encoder and projector, the
   prompt's embeddings with the projection written in, then transformers' ``generate`` (greedy,
   the same stop on EOS), timed through a streamer. Median of ``--repeats`` runs after a warm-up.
2. Cold (a new process, what a user waits for at the shell): ``anymodal chat --image
   examples/red_circle.png "What shape is this?"`` until the first byte of its answer and until
   it exits. The reference is a process that does the least any tool built on transformers must:
   load the same LLM and tokenizer with ``AutoModelForCausalLM``/``AutoTokenizer``, generate a
   few tokens from a text prompt and print them (no encoder, no image). ``import torch,
   transformers`` alone is shown too.

    python benchmarks/first_answer.py [--model builtin:demo] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from threading import Thread
from typing import Any

import torch
import transformers

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: (modality, sample file, question): one per modality.
QUESTIONS = [
    ("image", "red_circle.png", "What shape is this?"),
    ("video", "green_triangle_moving_right.mp4", "Which way does the shape move?"),
    ("audio", "high_beeping_tone.wav", "Describe the sound."),
    ("depth", "near_object_depth.png", "How far away is the object?"),
    ("thermal", "hot_object_thermal.png", "Is the object hot or cold?"),
    ("imu", "running_imu.npy", "What is the person doing?"),
]


def median_times(run: Callable[[], Iterator[str]], repeats: int) -> tuple[float, float, str]:
    """Median seconds to the first piece of text and to the end, and the text, over ``repeats``."""
    first, total, text = [], [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        pieces = run()
        text = next(pieces)
        first.append(time.perf_counter() - start)
        text += "".join(pieces)
        total.append(time.perf_counter() - start)
    return statistics.median(first), statistics.median(total), text


def warm(source: str, repeats: int) -> list[tuple[str, float, float, float, float, str]]:
    from anymodal.config import load_config
    from anymodal.contract.registry import load_registry
    from anymodal.contract.specs import Message
    from anymodal.runtime.chat import ChatSession
    from anymodal.runtime.model import scatter_embeddings
    from anymodal.runtime.processor import Attachment, Turn

    registry = load_registry()
    loaded = load_config(source, [], registry)
    session = ChatSession.from_config(loaded.config, registry)
    model = session.model
    llm: Any = model.bridge.module  # the Hugging Face model itself
    tokenizer = transformers.AutoTokenizer.from_pretrained(model.config.llm.path)

    rows = []
    for modality, name, question in QUESTIONS:
        path = EXAMPLES / name

        def ours(modality: str = modality, path: Path = path, question: str = question) -> Iterator[str]:
            session.reset()
            session._cache.clear()  # encode afresh each time, as the first turn of a chat does
            session.attach(modality, path)
            return session.ask(question)

        def by_hand(modality: str = modality, path: Path = path, question: str = question) -> Iterator[str]:
            spec = registry.modalities[modality]
            tensor = spec.preprocess(spec.loader(path), **model.config.modalities[modality].preprocess)
            with torch.no_grad():
                features = model.encoders[modality](tensor[None])
                projected = model.projectors[modality](features)[0]
                attachment = Attachment(modality, projected.shape[0])
                prompt = session.processor.process([Turn(Message("user", question), (attachment,))])
                ids = torch.tensor([prompt.input_ids])
                embeds = scatter_embeddings(llm.get_input_embeddings()(ids), [prompt.slots], [[projected]])
            streamer = transformers.TextIteratorStreamer(
                tokenizer, skip_prompt=True, skip_special_tokens=True
            )
            Thread(
                target=llm.generate,
                kwargs={
                    "inputs_embeds": embeds,
                    "attention_mask": torch.ones(ids.shape, dtype=torch.long),
                    "max_new_tokens": session.generation.max_new_tokens,
                    "do_sample": False,
                    "streamer": streamer,
                    "pad_token_id": tokenizer.pad_token_id,
                },
            ).start()
            return (piece for piece in streamer if piece)

        median_times(ours, 1), median_times(by_hand, 1)  # warm-up
        our_first, our_total, text = median_times(ours, repeats)
        ref_first, ref_total, _ = median_times(by_hand, repeats)
        rows.append((modality, our_first, ref_first, our_total, ref_total, text.strip()))
    return rows


def first_byte_and_exit(command: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    process.stdout.read(1)
    first = time.perf_counter() - start
    process.communicate()
    return first, time.perf_counter() - start


#: The reference for a cold start: load the LLM with transformers, generate, print.
BY_HAND = """
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tokenizer("What shape is this?", return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens=8, do_sample=False)[0]), flush=True)
"""


def cold(source: str, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (first output byte, exit) of a chat process and of the references, by name."""
    from anymodal.config import load_config

    llm = load_config(source).config.model.llm.path
    anymodal = str(Path(sys.executable).with_name("anymodal"))
    commands = {
        "anymodal chat --image": [
            anymodal,
            "chat",
            "--model",
            source,
            "--image",
            str(EXAMPLES / "red_circle.png"),
            "What shape?",
        ],
        "transformers: load the LLM, generate": [sys.executable, "-c", BY_HAND, llm],
        "import torch, transformers": [sys.executable, "-c", "import torch, transformers; print('x')"],
    }
    medians = {}
    for name, command in commands.items():
        first_byte_and_exit(command)  # warm the file cache, as a second run at the shell would be
        runs = [first_byte_and_exit(command) for _ in range(repeats)]
        medians[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:demo")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"model {args.model}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\nwarm: attach + ask until the first text and until the end (ms), median of", args.repeats)
    print("| modality | first text | by hand | ratio | whole reply | by hand | ratio | reply |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for modality, first, ref_first, total, ref_total, text in warm(args.model, args.repeats):
        print(
            f"| {modality} | {first * 1e3:.1f} | {ref_first * 1e3:.1f} | {first / ref_first:.2f} "
            f"| {total * 1e3:.1f} | {ref_total * 1e3:.1f} | {total / ref_total:.2f} | {text} |"
        )
    print("\ncold: a new process until its first output byte and until it exits (s), median of", end=" ")
    print(args.repeats)
    print("| process | first byte | exit | exit / transformers' |")
    print("|---|---:|---:|---:|")
    medians = cold(args.model, args.repeats)
    reference = medians["transformers: load the LLM, generate"][1]
    for name, (first, total) in medians.items():
        print(f"| {name} | {first:.2f} | {total:.2f} | {total / reference:.2f} |")


if __name__ == "__main__":
    main()
