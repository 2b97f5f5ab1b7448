"""PandaGPT across turns: anymodal's chat against PandaGPT's own inference, reimplemented here.

The reference below is PandaGPT's ``OpenLLAMAPEFTModel`` (``code/model/openllama.py`` at
9b77e04) as it runs under ``code/web_demo.py``, written again from its facts: the LLM wrapped by
PEFT with r = alpha = 32 on q/k/v/o and the delta loaded into it by key (``load_state_dict(...,
strict=False)``); ``llama_proj`` on ImageBind's pooled vector; ``prepare_generation_embedding``
(BOS as an embedding, then ``"### Human: <Img>"``, the input's one token, ``"</Img> " + prompt +
"\\n### Assistant:"``, each tokenised without special tokens); ``generate`` (HF ``generate`` from
``inputs_embeds`` with ``StoppingCriteriaSub(stops=[id of "##"], encounters=1)``, then
``decode(output_ids[:-2], skip_special_tokens=True)``); and ``predict``'s history
(``"{q}\\n### Assistant: {a}\\n###"``, later turns ``" Human: {q}\\n### Assistant: {a}\\n###"``,
then the new input). Decoding is greedy on both sides (PandaGPT samples with top_p 0.01).

PandaGPT ran transformers 4.29.1, whose ``generate`` from embeddings returns ``[bos] + new ids``;
today's returns the new ids alone. ``[:-2]`` then cuts the same ids and the BOS is skipped by the
decode, so the text is the same either way; the stopping criterion never sees prompt ids in either.

Each conversation is 3 turns with an image attached to the first (PandaGPT caches its encoding,
anymodal too), on a tiny LLaMA-1-shaped Llama with a toy delta in PandaGPT's exact format, in
float32. Every turn must give the same prompt ids, the same prompt embeddings (bit for bit), the
same kept reply ids and the same reply text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from peft import LoraConfig, get_peft_model
from PIL import Image
from transformers import AutoTokenizer, LlamaForCausalLM, StoppingCriteria, StoppingCriteriaList

from anymodal.cli import cli
from anymodal.config import load_config
from anymodal.contract.registry import load_registry
from anymodal.runtime.chat import ChatSession
from anymodal.runtime.processor import PromptProcessor
from anymodal.testing import TINY_IMAGEBIND, save_tiny_imagebind, train_bpe_tokenizer
from anymodal.testing.pandagpt import save_llama_1, save_pandagpt_delta, save_scripted_llama_1

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")

EMBED = TINY_IMAGEBIND["out_embed_dim"]
QUESTIONS = ["What is in this picture?", "Which colour is the largest shape?", "Is anyone there?"]
PROMPT_START = "### Human: <Img>"

TOKENIZER = train_bpe_tokenizer()  # the tokenizer every LLM here is saved with


def ids(*tokens: str) -> list[int]:
    """Vocabulary entries as ids: a scripted model may spell text however a test needs."""
    vocabulary = TOKENIZER.get_vocab()
    return [vocabulary[token] for token in tokens]


def text(piece: str) -> list[int]:
    return list(TOKENIZER.encode(piece, add_special_tokens=False))


#: What each scripted LLM answers (then EOS), max_new_tokens, how the reply ends, what it keeps.
SCRIPTS: dict[str, tuple[list[int], int, str, str]] = {
    # "A dog.\n###" as LLaMA spells it ("\n" "##" "#"): stops at "##", keeps "A dog." (no "\n").
    "stop": (text("A dog.") + ids("Ċ", "##", "#"), 16, "stop", "A dog."),
    # A "###" token mid-line is not the stop id (as LLaMA's 835 is not 2277): PandaGPT goes on,
    # and stops at the markdown "##" opening the next line, which ends the reply there.
    "markdown": (text("A red ### circle") + ids("Ċ", "##") + text(" star"), 16, "stop", "A red ### circle"),
    # "##" first: the reply is empty, and the history says so.
    "empty": (ids("##") + text(" star"), 16, "stop", ""),
    # EOS ends it: the two ids dropped are the EOS and the "." before it.
    "eos": (text("The sky is orange."), 16, "eos", "The sky is orange"),
    # No end within max_new_tokens: the last two of the 6 ids are dropped all the same.
    "length": (text("The quick brown fox"), 6, "length", "The quick"),
}


class StopOnIds(StoppingCriteria):
    """PandaGPT's StoppingCriteriaSub: stop once a stop id occurs ``encounters`` times in
    ``input_ids[0]``. As written there, only the last stop id's count is compared."""

    def __init__(self, stops: list[int], encounters: int = 1) -> None:
        super().__init__()
        self.stops = stops
        self.encounters = encounters

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> bool:
        count = 0
        for stop in self.stops:
            count = int((stop == input_ids[0]).sum().item())
        return count >= self.encounters


@dataclass
class Turn:
    prompt_ids: list[int]
    embeds: torch.Tensor
    reply_ids: list[int]
    reply: str
    ended: str  # "stop", "eos" or "length"


@dataclass
class PandaGPT:
    """PandaGPT's inference and web-demo history over one LLM, delta and (anymodal's) ImageBind."""

    llm: Path
    delta: Path
    encoder: torch.nn.Module
    dtype: torch.dtype = torch.float32
    history: list[tuple[str, str]] = field(default_factory=list)
    cache: list[torch.Tensor] = field(default_factory=list)  # the web demo's modality_cache

    def __post_init__(self) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(self.llm)
        llama = LlamaForCausalLM.from_pretrained(self.llm)
        config = LoraConfig(
            task_type="CAUSAL_LM",
            r=32,
            lora_alpha=32,
            lora_dropout=0.1,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        )
        self.llama_model = get_peft_model(llama, config)
        state = torch.load(self.delta, weights_only=True)
        lora = {k.removeprefix("llama_model."): v for k, v in state.items() if k.startswith("llama_model.")}
        result = self.llama_model.load_state_dict(lora, strict=False)
        assert result.unexpected_keys == [] and not any("lora" in k for k in result.missing_keys)
        weight = state["llama_proj.weight"]
        self.llama_proj = torch.nn.Linear(weight.shape[1], weight.shape[0])
        self.llama_proj.load_state_dict({"weight": weight, "bias": state["llama_proj.bias"]})
        # web_demo.py: model.eval().half().cuda(), the LoRA and the projection included. Its
        # modeling_llama.py computes RoPE's cos/sin cache in float32 when the model is built, and
        # .half() rounds the cache; today's Llama computes them from inv_freq at each step, so
        # inv_freq stays float32 to give the same values.
        rotary = self.llama_model.base_model.model.model.rotary_emb
        inv_freq = rotary.inv_freq.clone()
        self.llama_model.eval().to(self.dtype)
        rotary.inv_freq = inv_freq
        self.llama_proj.to(self.dtype)
        self.stop_id = self.tokenizer.convert_tokens_to_ids("##")  # LLaMA's 2277

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llama_model.model.model.embed_tokens(ids)

    def tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def predict(self, text: str, pixels: torch.Tensor, max_length: int) -> Turn:
        """web_demo.py's predict: the history into the prompt, generate, the reply into the history."""
        prompt_text = ""
        for index, (q, a) in enumerate(self.history):
            if index == 0:
                prompt_text += f"{q}\n### Assistant: {a}\n###"
            else:
                prompt_text += f" Human: {q}\n### Assistant: {a}\n###"
        prompt_text += text if not self.history else f" Human: {text}"
        turn = self.generate(prompt_text, pixels, max_length)
        self.history.append((text, turn.reply))
        return turn

    def generate(self, prompt: str, pixels: torch.Tensor, max_tgt_len: int) -> Turn:
        with torch.no_grad():
            if not self.cache:  # extract_multimodal_feature, once per conversation; encode_image
                # casts the pixels to the LLM's dtype
                vector = self.encoder(pixels.unsqueeze(0).to(self.dtype)).pooled
                self.cache.append(self.llama_proj(vector).unsqueeze(1))
            before = self.tokens(PROMPT_START)
            after = self.tokens("</Img> " + prompt + "\n### Assistant:")
            bos = torch.ones([1, 1], dtype=torch.long) * self.tokenizer.bos_token_id
            embeds = torch.cat(
                [
                    self.embed_tokens(bos),
                    self.embed_tokens(torch.tensor([before])),
                    self.cache[0],
                    self.embed_tokens(torch.tensor([after])),
                ],
                dim=1,
            )
            outputs = self.llama_model.generate(
                inputs_embeds=embeds,
                max_new_tokens=max_tgt_len,
                do_sample=False,
                use_cache=True,
                stopping_criteria=StoppingCriteriaList([StopOnIds(stops=[self.stop_id], encounters=1)]),
            )
        output_ids = outputs[0].tolist()
        reply = self.tokenizer.decode(output_ids[:-2], skip_special_tokens=True)
        ended = (
            "stop"
            if output_ids and output_ids[-1] == self.stop_id
            else "eos"
            if output_ids and output_ids[-1] == self.tokenizer.eos_token_id
            else "length"
        )
        assert ended != "length" or len(output_ids) == max_tgt_len
        # The slot of the one input holds the pad id in anymodal's prompt ids.
        prompt_ids = [self.tokenizer.bos_token_id, *before, self.tokenizer.pad_token_id, *after]
        return Turn(prompt_ids, embeds, output_ids[:-2], reply, ended)


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pandagpt-turns")
    image = root / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(image)
    found = {
        "root": root,
        "image": image,
        "imagebind": save_tiny_imagebind(root / "imagebind_huge.pth"),
        "random": save_llama_1(root / "vicuna", layers=2, hidden=32),
        "random-delta": save_pandagpt_delta(root / "random.pt", layers=2, hidden=32, embed_dim=EMBED),
        "scripted-delta": save_pandagpt_delta(root / "scripted.pt", layers=2, hidden=64, embed_dim=EMBED),
    }
    for name, (script, _, _, _) in SCRIPTS.items():
        found[name] = save_scripted_llama_1(root / f"scripted-{name}", script, layers=2, hidden=64)
    return found


def converted_config(parts: dict[str, Path], llm: str, delta: str, max_new_tokens: int, dtype: str) -> Path:
    """``anymodal convert pandagpt``, its config at toy ImageBind width, on CPU in ``dtype``, greedy."""
    output = parts["root"] / f"converted-{llm}-{dtype}"
    args = ["--llm", str(parts[llm]), "--imagebind", str(parts["imagebind"]), "-o", str(output)]
    result = CliRunner().invoke(cli, ["convert", "pandagpt", str(parts[delta]), *args])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((output / "anymodal.yaml").read_text())
    for block in config["model"]["modalities"].values():
        block["encoder"]["options"]["config"] = TINY_IMAGEBIND
    assert config["model"]["dtype"] == "float16"  # as PandaGPT runs
    config["model"].update(device="cpu", dtype=dtype)
    config["generation"].update(do_sample=False, max_new_tokens=max_new_tokens)
    (output / "tiny.yaml").write_text(yaml.safe_dump(config))
    return output / "tiny.yaml"


class Recorder:
    """What anymodal's chat sends the bridge each turn: prompt ids, embeddings, kept reply ids."""

    def __init__(self, session: ChatSession, monkeypatch: pytest.MonkeyPatch) -> None:
        self.prompts: list[list[int]] = []
        self.embeds: list[torch.Tensor] = []
        self.replies: list[list[int]] = []
        process = PromptProcessor.process

        def record_prompt(processor: PromptProcessor, *args: Any, **kwargs: Any) -> Any:
            prompt = process(processor, *args, **kwargs)
            self.prompts.append(list(prompt.input_ids))
            return prompt

        bridge: Any = session.model.bridge
        generate_ids = bridge.generate_ids

        def record_reply(inputs_embeds: torch.Tensor, *args: Any) -> Any:
            self.embeds.append(inputs_embeds.detach().clone())
            kept: list[int] = []
            self.replies.append(kept)
            for token in generate_ids(inputs_embeds, *args):
                kept.append(token)
                yield token

        monkeypatch.setattr(PromptProcessor, "process", record_prompt)
        monkeypatch.setattr(bridge, "generate_ids", record_reply)


def chat_both(
    parts: dict[str, Path], llm: str, delta: str, max_new_tokens: int, monkeypatch, dtype: str = "float32"
) -> list[Turn]:
    """The conversation through anymodal and through PandaGPT; every turn compared."""
    registry = load_registry()
    path = converted_config(parts, llm, delta, max_new_tokens, dtype)
    # Every prompt whole, as PandaGPT runs it; with the KV cache kept, the replies must not change.
    config = load_config(path, ["generation.kv_cache_mb=0"], registry=registry).config
    session = ChatSession.from_config(config, registry)
    reusing = ChatSession.from_config(load_config(path, registry=registry).config, registry)
    recorder = Recorder(session, monkeypatch)
    pixels = session.model.prepare("image", parts["image"]).tensor
    reference = PandaGPT(parts[llm], parts[delta], session.model.encoders["image"], getattr(torch, dtype))
    turns = []
    for number, question in enumerate(QUESTIONS):
        if number == 0:
            session.attach("image", parts["image"])
            reusing.attach("image", parts["image"])
        reply = "".join(session.ask(question))
        assert "".join(reusing.ask(question)) == reply, f"turn {number + 1} of {llm}, the cache kept"
        theirs = reference.predict(question, pixels, max_new_tokens)
        where = f"turn {number + 1} of {llm}"
        assert recorder.prompts[-1] == theirs.prompt_ids, where
        assert torch.equal(recorder.embeds[-1], theirs.embeds), where
        assert recorder.replies[-1] == theirs.reply_ids, where
        assert reply == theirs.reply and session.history[-1].reply == theirs.reply, where
        turns.append(theirs)
    assert session.encoded_count == 1 and len(reference.cache) == 1
    assert reusing.prefixes is not None and reusing.prefixes.hits == len(QUESTIONS) - 1
    return turns


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_every_turn_is_pandagpts_with_a_scripted_reply(parts, case, monkeypatch):
    _, max_new_tokens, ending, expected = SCRIPTS[case]
    turns = chat_both(parts, case, "scripted-delta", max_new_tokens, monkeypatch)
    assert [turn.ended for turn in turns] == [ending] * 3  # the edge case really happened
    assert [turn.reply for turn in turns] == [expected] * 3
    # The next turn's text carries the reply as the web demo writes it.
    second = TOKENIZER.decode(turns[1].prompt_ids, skip_special_tokens=True)
    assert f"### Assistant: {expected}\n### Human: {QUESTIONS[1]}\n### Assistant:" in second


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_every_turn_is_pandagpts_on_a_random_llm(parts, monkeypatch, dtype):
    """A random tiny Llama with the delta's LoRA fully at work, whatever it says; in float16 too
    (PandaGPT's own precision), which needs the LoRA loaded in float16 as PandaGPT runs it."""
    turns = chat_both(parts, "random", "random-delta", 8, monkeypatch, dtype)
    assert len(turns) == 3 and all(turn.reply_ids for turn in turns)
    assert all(turn.embeds.dtype == getattr(torch, dtype) for turn in turns)
