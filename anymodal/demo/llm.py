"""The demo model's language model: a BPE tokenizer and a small Llama, both trained on the world's text.

This is the demo's stand-in for a pretrained LLM. The tokenizer is trained on the conversations'
text (ChatML, with every input's span empty). The Llama is trained on the same conversations as
plain causal language modelling, tokenised by anymodal's own prompt processor for the demo
config, exactly as ``anymodal train`` and ``anymodal chat`` will tokenise them: each input's span
holds its slot positions (the pad token, where a projection goes later) between its opening and
closing text, each tokenised on its own. It learns how questions are asked and answers phrased,
and where inputs sit in a prompt, not what any input shows: that is stage 1 and 2's job.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anymodal.config.schema import AnymodalConfig, ScheduleConfig
from anymodal.contract.registry import Registry
from anymodal.runtime.tiny_llm import CHATML_TEMPLATE, PAD_ID, tiny_llama, train_bpe_tokenizer

if TYPE_CHECKING:
    from anymodal.contract.specs import Message
    from anymodal.train.examples import Example


@dataclass(frozen=True)
class LLMRecipe:
    """The demo LLM's size and its text pre-training."""

    vocab_size: int = 1024
    hidden_size: int = 96
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 192
    max_position_embeddings: int = 512
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 30
    seed: int = 0


def conversation_texts(
    conversations: Iterable[Sequence[Message]], placeholders: Mapping[str, str]
) -> list[str]:
    """Each conversation in ChatML, every input's placeholder an empty span (``<image></image>``)."""
    from anymodal.contract.specs import Message
    from anymodal.runtime.templates import render_chatml

    pattern = re.compile("|".join(re.escape(p) for p in placeholders.values()))
    spans = {placeholder: f"<{name}></{name}>" for name, placeholder in placeholders.items()}
    return [
        render_chatml(
            [
                Message(message.role, pattern.sub(lambda match: spans[match.group(0)], message.content))
                for message in conversation
            ],
            add_generation_prompt=False,
        )
        for conversation in conversations
    ]


def train_demo_llm(
    config: AnymodalConfig,
    registry: Registry,
    directory: Path,
    recipe: LLMRecipe = LLMRecipe(),
    log: Callable[[str], None] = print,
) -> list[float]:
    """Train the tokenizer and the Llama on ``config``'s training data, save both to ``directory``
    (which ``config``'s ``model.llm.path`` is then set to); returns the losses.

    Deterministic for the same data and recipe on the same machine (the torch RNG is forked).
    """
    import torch

    from anymodal.train.setup import build_model, read_data, tokenize_data

    records = read_data(config, registry)
    placeholders = {name: registry.modalities[name].placeholder for name in config.model.modalities}
    texts = conversation_texts((record.messages for record in records.train), placeholders)
    tokenizer = train_bpe_tokenizer(texts, vocab_size=recipe.vocab_size, chat_template=CHATML_TEMPLATE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        llm = tiny_llama(
            len(tokenizer),
            hidden_size=recipe.hidden_size,
            num_layers=recipe.num_layers,
            num_heads=recipe.num_heads,
            num_kv_heads=recipe.num_kv_heads,
            intermediate_size=recipe.intermediate_size,
            max_position_embeddings=recipe.max_position_embeddings,
            seed=recipe.seed,
        )
    directory.mkdir(parents=True, exist_ok=True)
    llm.save_pretrained(directory)
    tokenizer.save_pretrained(directory)

    config = copy.deepcopy(config)
    config.model.llm.path = str(directory)
    model = build_model(config, registry, "cpu")
    examples = tokenize_data(records, config, model, model.prompt_processor(registry)).train
    loaded: Any = model.bridge.module  # the Hugging Face model the bridge loaded
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        losses = _fit(loaded, examples, recipe, log)
    loaded.save_pretrained(directory)
    return losses


def _fit(
    model: Any, examples: Sequence[Example], recipe: LLMRecipe, log: Callable[[str], None]
) -> list[float]:
    """Causal language modelling on every token of ``examples`` but their input slots."""
    import torch

    from anymodal.train.schedule import make_scheduler

    model.requires_grad_(True)  # the bridge loads an LLM frozen, as stage 1 and 2 want it
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = ScheduleConfig(warmup_steps=recipe.warmup_steps, decay="cosine")
    scheduler = make_scheduler(optimizer, schedule, recipe.steps)
    generator = torch.Generator().manual_seed(recipe.seed)
    model.train()
    losses: list[float] = []
    order = torch.randperm(len(examples), generator=generator).tolist()
    cursor = 0
    for step in range(recipe.steps):
        if cursor + recipe.batch_size > len(order):
            order, cursor = torch.randperm(len(examples), generator=generator).tolist(), 0
        batch = [examples[i] for i in order[cursor : cursor + recipe.batch_size]]
        cursor += recipe.batch_size
        length = max(len(example.input_ids) for example in batch)
        ids = torch.full((len(batch), length), PAD_ID)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        for row, example in enumerate(batch):
            ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
            mask[row, : len(example.input_ids)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        for row, example in enumerate(batch):
            for slot in example.slots:
                labels[row, slot.start : slot.start + slot.length] = -100
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == recipe.steps:
            log(f"llm step {step + 1}/{recipe.steps}: loss {sum(losses[-50:]) / len(losses[-50:]):.3f}")
    model.eval()
    return losses
