"""The demo model's language model: a BPE tokenizer and a small Llama, both trained on the world's text.

This is the demo's stand-in for a pretrained LLM. The tokenizer is trained on the conversations'
text, and the Llama on the same conversations, rendered with the ChatML template the demo model
chats in and with every input's span left empty, as plain causal language modelling. It learns
how questions are asked and answers phrased, not what any input shows: that is stage 1 and 2's
job, which ``anymodal train`` does on top of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymodal.config.schema import ScheduleConfig
from anymodal.testing.tiny import CHATML_TEMPLATE, PAD_ID, tiny_llama, train_bpe_tokenizer


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


def conversation_texts(records: Iterable[Mapping[str, Any]], placeholders: Mapping[str, str]) -> list[str]:
    """Each record's conversation in ChatML, every input's placeholder an empty span (``<image></image>``)."""
    from anymodal.specs import Message
    from anymodal.templates import render_chatml
    from anymodal.train.data import ROLES

    pattern = re.compile("|".join(re.escape(p) for p in placeholders.values()))
    spans = {placeholder: f"<{name}></{name}>" for name, placeholder in placeholders.items()}
    return [
        render_chatml(
            [
                Message(ROLES[turn["from"]], pattern.sub(lambda match: spans[match.group(0)], turn["value"]))
                for turn in record["conversations"]
            ],
            add_generation_prompt=False,
        )
        for record in records
    ]


def train_demo_llm(
    texts: Sequence[str],
    directory: Path,
    recipe: LLMRecipe = LLMRecipe(),
    log: Callable[[str], None] = print,
) -> list[float]:
    """Train the tokenizer and the Llama on ``texts``, save both to ``directory``; the losses.

    Deterministic for the same texts and recipe on the same machine (the torch RNG is forked).
    """
    import torch

    tokenizer = train_bpe_tokenizer(texts, vocab_size=recipe.vocab_size, chat_template=CHATML_TEMPLATE)
    sequences = [tokenizer(text)["input_ids"] for text in texts]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = tiny_llama(
            len(tokenizer),
            hidden_size=recipe.hidden_size,
            num_layers=recipe.num_layers,
            num_heads=recipe.num_heads,
            num_kv_heads=recipe.num_kv_heads,
            intermediate_size=recipe.intermediate_size,
            max_position_embeddings=recipe.max_position_embeddings,
            seed=recipe.seed,
        )
        losses = _fit(model, sequences, recipe, log)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return losses


def _fit(
    model: Any, sequences: Sequence[list[int]], recipe: LLMRecipe, log: Callable[[str], None]
) -> list[float]:
    import torch

    from anymodal.train.schedule import make_scheduler

    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

    schedule = ScheduleConfig(warmup_steps=recipe.warmup_steps, decay="cosine")
    scheduler = make_scheduler(optimizer, schedule, recipe.steps)
    generator = torch.Generator().manual_seed(recipe.seed)
    model.train()
    losses: list[float] = []
    order = torch.randperm(len(sequences), generator=generator).tolist()
    cursor = 0
    for step in range(recipe.steps):
        if cursor + recipe.batch_size > len(order):
            order, cursor = torch.randperm(len(sequences), generator=generator).tolist(), 0
        batch = [sequences[i] for i in order[cursor : cursor + recipe.batch_size]]
        cursor += recipe.batch_size
        length = max(map(len, batch))
        ids = torch.full((len(batch), length), PAD_ID)
        for row, sequence in enumerate(batch):
            ids[row, : len(sequence)] = torch.tensor(sequence)
        mask = ids != PAD_ID
        labels = ids.masked_fill(~mask, -100)
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
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
