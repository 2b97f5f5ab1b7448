"""Proof that ``anymodal train`` learns: answers that depend on the input, right on unseen files.

A tiny model is built from the real pieces: the installed ``image`` and ``audio`` plugins with the
``imagebind`` encoder (ImageBind's architecture at toy width, random but fixed weights saved to a
file), ``mlp`` projectors, a tiny random Llama and a byte-level BPE tokenizer trained here on the
dataset's text. The instruction data (80 examples) asks for the colour of a shape (4 colours) or
the pitch of a tone (low or high); the answer is a fixed sentence per class, so only the input
tells the classes apart. Images and tones vary in everything else (size, position, shape,
background, noise; duration, amplitude, phase, detuning).

Before training the model babbles: 0 of 36 held-out probes right. After 300 stage-2 steps
(projectors + LoRA; the whole file takes about 12 s on 2 CPU cores) it answers held-out files --
new images and tones written with another seed -- correctly: 24/24 colours (chance 1/4) and 12/12
pitches (chance 1/2) with each of the seeds 0-11 tried; 200 steps were already enough for 0-3.
The test asks for at least 90 % per modality.

The encoder's weights come from a file, as a real encoder's would (an encoder without one is
built from a fixed seed, which would work too). :func:`test_the_first_reply_token_is_trained`
checks, for every named template, that the first token a reply starts with is a training target.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
import yaml
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from anymodal.config import load_config
from anymodal.contract.registry import Registry, load_registry
from anymodal.contract.specs import Message
from anymodal.runtime.chat import ChatSession
from anymodal.runtime.model import AnyModalModel
from anymodal.runtime.processor import Attachment, Turn
from anymodal.testing import tiny_llama, train_bpe_tokenizer
from anymodal.train.trainer import Trainer

#: Class name -> base RGB colour of the shape.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 175, 55),
    "blue": (40, 70, 220),
    "yellow": (235, 210, 40),
}
#: Class name -> base frequency of the tone in Hz.
PITCHES: dict[str, float] = {"low": 220.0, "high": 1760.0}
SAMPLE_RATE = 16000

SEED = 0
STEPS = 300
IMAGES_PER_COLOUR, TONES_PER_PITCH = 14, 12  # 56 + 24 = 80 training examples
HELD_OUT_IMAGES_PER_COLOUR, HELD_OUT_TONES_PER_PITCH = 6, 6  # 24 + 12 held-out probes

IMAGE_QUESTIONS = ("Which colour is this?", "What colour is the shape?")
AUDIO_QUESTIONS = ("Is the tone high or low?", "How high is this tone?")

IMAGE_SIZE, MEL_BINS, AUDIO_FRAMES = 32, 64, 100  # toy input sizes: 4x4 patches, one 1 s clip
ENCODER = {  # ImageBind's architecture at toy width; only the vision and audio trunks are built
    "out_embed_dim": 32, "image_size": IMAGE_SIZE, "kernel_size": [2, 8, 8],
    "vision_embed_dim": 32, "vision_num_blocks": 1, "vision_num_heads": 2,
    "audio_embed_dim": 32, "audio_num_blocks": 1, "audio_num_heads": 2,
    "audio_num_mel_bins": MEL_BINS, "audio_target_len": AUDIO_FRAMES, "audio_drop_path": 0.0,
}  # fmt: skip
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]


# --- synthetic media: the class is plain to see or hear, everything else varies -----------------


def write_image(path: Path, colour: str, rng: np.random.Generator, size: int = 32) -> Path:
    """A ``size``-pixel square png: a filled square or circle of ``colour`` on a light background.

    The shape covers 45-80 % of the side at a random position; background, colour and pixels get
    random jitter and noise.
    """
    background = tuple(int(v) for v in rng.integers(200, 256) - rng.integers(0, 20, size=3))
    image = Image.new("RGB", (size, size), background)
    side = int(rng.integers(int(0.45 * size), int(0.8 * size) + 1))
    left, top = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    fill = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in COLOURS[colour])
    box = (left, top, left + side - 1, top + side - 1)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.5:
        draw.rectangle(box, fill=fill)
    else:
        draw.ellipse(box, fill=fill)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, size=(size, size, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def write_tone(path: Path, pitch: str, rng: np.random.Generator) -> Path:
    """A 16 kHz mono wav: a sine of ``pitch`` (detuned up to ±3 %), 0.8-1.4 s, random amplitude and
    phase, short fades, and a little white noise."""
    duration = rng.uniform(0.8, 1.4)
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    frequency = PITCHES[pitch] * rng.uniform(0.97, 1.03)
    tone = rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    signal = tone * fade + rng.normal(0.0, 0.01, t.shape)
    soundfile.write(path, signal.astype(np.float32), SAMPLE_RATE)
    return path


def image_answer(colour: str) -> str:
    return f"It is {colour}."


def tone_answer(pitch: str) -> str:
    return f"The tone is {pitch}."


@dataclass(frozen=True)
class Probe:
    """One held-out question: the file, what to ask, and the one right answer."""

    modality: str
    path: Path
    question: str
    label: str
    answer: str
    classes: tuple[str, ...]

    def judge(self, reply: str) -> bool:
        """Right: the reply starts with the answer sentence and names no other class."""
        words = set(re.findall(r"[a-z]+", reply.lower()))
        others = set(self.classes) - {self.label}
        return reply.strip().startswith(self.answer) and not words & others


def write_media(
    directory: Path, seed: int, per_colour: int, per_pitch: int
) -> list[tuple[str, Path, str, str, str]]:
    """Images and tones written with ``seed``: (modality, file, question, label, answer) each."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(per_colour):
        for colour in COLOURS:
            file = write_image(directory / f"{colour}_{index}.png", colour, rng, size=IMAGE_SIZE)
            question = IMAGE_QUESTIONS[index % len(IMAGE_QUESTIONS)]
            items.append(("image", file, question, colour, image_answer(colour)))
    for index in range(per_pitch):
        for pitch in PITCHES:
            file = write_tone(directory / f"{pitch}_{index}.wav", pitch, rng)
            question = AUDIO_QUESTIONS[index % len(AUDIO_QUESTIONS)]
            items.append(("audio", file, question, pitch, tone_answer(pitch)))
    return items


def save_llm(directory: Path, texts: list[str]) -> None:
    """A BPE tokenizer trained on ``texts`` and a tiny random Llama sized to it."""
    tokenizer = train_bpe_tokenizer(texts, vocab_size=512)
    model = tiny_llama(len(tokenizer), hidden_size=64, intermediate_size=128, seed=SEED)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def save_encoder(file: Path) -> None:
    """Random but fixed ImageBind weights (vision and audio trunks), loadable as encoder weights."""
    from anymodal.encoders.imagebind.model import ImageBind
    from anymodal.encoders.imagebind.spec import ImageBindOptions

    config = ImageBindOptions(config=ENCODER).image_bind_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = ImageBind(config, ["vision", "audio"])
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(file))


def model_config() -> dict[str, Any]:
    def encoder() -> dict[str, Any]:
        # postprocess False: the head output as is (no L2 norm), so classes differ by more.
        options = {"preset": "huge", "config": ENCODER, "postprocess": False}
        return {"weights": "./imagebind.safetensors", "options": options}

    return {
        "model": {
            "llm": {"path": "./llm"},
            "template": "chatml",
            "modalities": {
                "image": {
                    "encoder": encoder(),
                    # every patch token (17), so colour is read locally rather than from one pooled vector
                    "projector": {"name": "mlp", "options": {"input": "tokens"}},
                    "preprocess": {"image_size": IMAGE_SIZE},
                },
                "audio": {
                    "encoder": encoder(),
                    "projector": {"name": "mlp", "options": {"input": "tokens"}},
                    "preprocess": {
                        "clips": 1,
                        "clip_duration": 1.0,
                        "num_mel_bins": MEL_BINS,
                        "target_length": AUDIO_FRAMES,
                    },
                },
            },
        },
        "generation": {"max_new_tokens": 16},
        "train": {
            "stage": 2,
            "seed": SEED,
            "data": {"train": "./train.jsonl", "max_length": 128},
            "output_dir": "./run",
            "feature_cache": "./features",
            "batch_size": 8,
            "max_steps": STEPS,
            "optimizer": {"lr": 5e-3, "weight_decay": 0.0},
            "schedule": {"warmup_steps": 10},
            # LoRA on every linear layer, lm_head included: the random LLM must learn the answer
            # sentences from scratch, and its frozen lm_head alone keeps logits too flat for that.
            "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": LORA_TARGETS},
            "save_every": 0,
            "log_every": 1000,
        },
    }


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from a second thread, and on a busy machine threads that wait for
    each other make this file many times slower (80-95 s instead of 16 s on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Probe]]:
    """The config file of an untrained model with its training data, and the held-out probes."""
    root = tmp_path_factory.mktemp("learns")
    train = write_media(root / "train", SEED, IMAGES_PER_COLOUR, TONES_PER_PITCH)
    held_out = write_media(root / "held_out", SEED + 1, HELD_OUT_IMAGES_PER_COLOUR, HELD_OUT_TONES_PER_PITCH)
    records = [
        {
            modality: str(file.relative_to(root)),
            "conversations": [
                {"from": "human", "value": f"<{modality}>\n{question}"},
                {"from": "gpt", "value": answer},
            ],
        }
        for modality, file, question, _, answer in train
    ]
    (root / "train.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    texts = [
        f"<|im_start|>user\n<{modality}></{modality}>\n{question}<|im_end|>\n"
        f"<|im_start|>assistant\n{answer}<|im_end|>\n"
        for modality, _, question, _, answer in train
    ]
    save_llm(root / "llm", texts)
    save_encoder(root / "imagebind.safetensors")
    config = root / "anymodal.yaml"
    config.write_text(yaml.safe_dump(model_config(), sort_keys=False))
    probes = [
        Probe(
            modality,
            file,
            question,
            label,
            answer,
            tuple(COLOURS) if modality == "image" else tuple(PITCHES),
        )
        for modality, file, question, label, answer in held_out
    ]
    return config, probes


def accuracy(source: Path, registry: Registry, probes: list[Probe]) -> tuple[dict[str, float], list[str]]:
    """Greedy replies to every probe from the model at ``source``: accuracy per modality, replies."""
    loaded = load_config(source, registry=registry)
    session = ChatSession.from_config(loaded.config, registry)
    right: dict[str, list[bool]] = {}
    replies = []
    for probe in probes:
        session.attach(probe.modality, probe.path)
        reply = "".join(session.ask(probe.question))
        session.reset()
        right.setdefault(probe.modality, []).append(probe.judge(reply))
        replies.append(f"{probe.path.name}: {reply!r}")
    return {modality: sum(hits) / len(hits) for modality, hits in right.items()}, replies


@pytest.mark.filterwarnings("ignore:Setting `save_embedding_layers`:UserWarning")  # lm_head has LoRA
def test_training_teaches_answers_that_depend_on_the_input(workspace: tuple[Path, list[Probe]]) -> None:
    config, probes = workspace
    registry = load_registry()
    chance = {"image": 1 / len(COLOURS), "audio": 1 / len(PITCHES)}  # 0.25 and 0.5

    before, replies = accuracy(config, registry, probes)
    # Untrained (random projectors, no adapter) the LLM babbles: not one right answer sentence.
    assert before == {"image": 0.0, "audio": 0.0}, replies

    result = Trainer(load_config(config, registry=registry), registry, log=lambda line: None).fit()
    assert result.step == STEPS and result.last_checkpoint is not None
    # The loss falls from ~ln(vocab) = 5.8 to ~1e-4. A model that ignored its inputs would stay near
    # 0.2 (ln 4 or ln 2 on the class word), one that ignored only the tones near 0.03.
    assert result.losses[0] > 4.0 and float(np.mean(result.losses[-10:])) < 0.01, result.losses[::25]

    after, replies = accuracy(result.last_checkpoint, registry, probes)
    # Held-out inputs, so right answers mean the class was read from the input; 1.0 in practice,
    # against chance 0.25 (colours) and 0.5 (pitches).
    for modality in ("image", "audio"):
        assert after[modality] >= 0.9 > chance[modality], (modality, after, replies)


@pytest.mark.parametrize("template", ["chatml", "plain", "pandagpt", "vicuna"])
def test_the_first_reply_token_is_trained(workspace: tuple[Path, list[Probe]], template: str) -> None:
    """What generation asks for first is what training teaches: the token right after the prompt.

    The generation prompt is the training text up to the reply, so the training tokens start with
    the prompt's, and the next one, the reply's first, must be a target.
    """
    config, _ = workspace
    registry = load_registry()
    loaded = load_config(config, overrides=[f"model.template={template}"], registry=registry)
    model = AnyModalModel.from_config(loaded.config.model, registry)
    processor = model.prompt_processor(registry)
    image = Attachment("image", model.tokens_per_input("image"))
    question = Turn(Message("user", "<image>\nWhich colour is this?"), (image,))
    prompt = processor.process([question])
    example = processor.process([question, Message("assistant", image_answer("red"))], targets=True)
    assert example.targets is not None
    prefix = len(prompt.input_ids)
    assert example.input_ids[:prefix] == prompt.input_ids
    assert example.targets[prefix], f"token {example.input_ids[prefix]} right after the prompt is not trained"
