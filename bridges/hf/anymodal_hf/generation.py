"""Our own decode loop over a Hugging Face causal LM, starting from ``inputs_embeds``.

Not ``model.generate``: the prompt arrives as embeddings with modality tokens spliced in, the
reply must stream, stop strings must cut it exactly, and the loop has to stop the moment its
consumer goes away. One forward over the prompt fills the KV cache; each step then feeds one token.
Given a :class:`LoopState` with a cache of the prompt's first positions, the loop runs only the
rest, and leaves the state holding the cache over everything it ran and the reply ids it fed.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import anymodal


class ForwardArgs:
    """The keyword names a model's forward takes, which differ across transformers versions.

    transformers 5.x calls the KV cache ``cache`` (``past_key_values`` before); ``logits_to_keep``
    saves computing logits for every prompt position when only the last is needed.
    """

    def __init__(self, model: nn.Module) -> None:
        get_base_model = getattr(model, "get_base_model", None)  # look through a PEFT wrapper
        base = get_base_model() if callable(get_base_model) else model
        parameters = inspect.signature(base.forward).parameters
        self.cache = "cache" if "cache" in parameters else "past_key_values"
        self.position_ids = "position_ids" in parameters
        self.logits_to_keep = "logits_to_keep" in parameters

    def positions(self, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """``position_ids [batch, seq]`` counted over real tokens, so left padding does not shift them."""
        if not self.position_ids:
            return {}
        positions = attention_mask.long().cumsum(-1) - 1
        return {"position_ids": positions.clamp(min=0)}


def positions_of_last(args: ForwardArgs, attention_mask: torch.Tensor, count: int) -> dict[str, torch.Tensor]:
    return {name: value[:, -count:] for name, value in args.positions(attention_mask).items()}


@dataclass
class LoopState:
    """What :func:`decode_loop` continues from and leaves behind. ``cache``: the model's KV cache
    (a transformers ``Cache``) over the positions before the prompt's embeddings, or None; after
    each forward that completes, the cache over everything run so far. ``fed``: the reply's ids run
    through the model, in order. ``broken``: a forward failed part-way, so ``cache`` may hold half
    a step and must not be used again."""

    cache: Any = None
    fed: list[int] = field(default_factory=list)
    broken: bool = False


def decode_loop(
    model: nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    config: anymodal.GenerationConfig,
    eos_token_ids: Collection[int] = (),
    *,
    keep_end: bool = False,
    state: LoopState | None = None,
) -> Iterator[int]:
    """Yield the reply's token ids for one prompt ``inputs_embeds [1, seq, hidden]``.

    ``attention_mask [1, past + seq]`` covers ``state.cache``'s positions (``past``, none without a
    state) and the prompt's. Ends at an id of ``eos_token_ids`` (EOS, or a stop id; yielded,
    last, only with ``keep_end``) or after ``config.max_new_tokens`` ids. Greedy takes the argmax;
    sampling divides by the temperature, keeps the nucleus of ``top_p`` mass and draws with a
    generator seeded from ``config.seed`` when one is given. Each step runs under
    ``torch.inference_mode``, which is off again whenever control is with the caller.
    """
    if inputs_embeds.dim() != 3 or inputs_embeds.shape[0] != 1:
        raise ValueError(f"decode_loop takes one prompt [1, seq, hidden], got {tuple(inputs_embeds.shape)}")
    if config.max_new_tokens <= 0:
        return
    state = state or LoopState()
    args = ForwardArgs(model)
    device = inputs_embeds.device
    generator = seeded_generator(config, device)
    mask = attention_mask.to(device=device, dtype=torch.long)
    kwargs = prompt_inputs(args, inputs_embeds, mask)
    if state.cache is not None:
        kwargs[args.cache] = state.cache
    token = _step(model, args, state, mask, kwargs, config, generator)
    for generated in range(1, config.max_new_tokens + 1):
        keep, last = judge(token, generated, config, eos_token_ids, keep_end)
        if keep:
            yield token
        if last:
            return
        fed = token
        mask = torch.cat([mask, mask.new_ones((1, 1))], dim=1)
        step = token_inputs(args, torch.tensor([[fed]], device=device), mask, state.cache)
        token = _step(model, args, state, mask, step, config, generator)
        state.fed.append(fed)


def seeded_generator(config: anymodal.GenerationConfig, device: torch.device) -> torch.Generator | None:
    """The generator a sampling reply draws from: seeded from ``config.seed``; None (torch's global
    one) for greedy replies and unseeded ones."""
    if config.greedy or config.seed is None:
        return None
    return torch.Generator(device=device).manual_seed(config.seed)


def judge(
    token: int,
    generated: int,
    config: anymodal.GenerationConfig,
    eos_token_ids: Collection[int],
    keep_end: bool,
) -> tuple[bool, bool]:
    """For ``token``, the reply's ``generated``-th id (from 1): (whether it is part of the reply,
    whether the reply ends with it). An id of ``eos_token_ids`` ends it, kept only with
    ``keep_end``; the ``config.max_new_tokens``-th id ends it too."""
    if token in eos_token_ids:
        return keep_end, True
    return True, generated >= config.max_new_tokens


def prompt_inputs(args: ForwardArgs, inputs_embeds: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
    """The forward's keywords for prompt embeddings ``[batch, seq, hidden]``, the last ``seq``
    positions of ``mask``; logits only for the last position where the model can say so."""
    kwargs: dict[str, Any] = {
        "inputs_embeds": inputs_embeds,
        **positions_of_last(args, mask, inputs_embeds.shape[1]),
    }
    if args.logits_to_keep:
        kwargs["logits_to_keep"] = 1
    return kwargs


def token_inputs(
    args: ForwardArgs, input_ids: torch.Tensor, mask: torch.Tensor, cache: Any
) -> dict[str, Any]:
    """The forward's keywords for one fed id per row, ``input_ids [batch, 1]``, after ``cache``."""
    return {"input_ids": input_ids, args.cache: cache, **positions_of_last(args, mask, 1)}


def run_forward(model: nn.Module, mask: torch.Tensor, kwargs: dict[str, Any]) -> Any:
    """One forward that fills the KV cache, under ``torch.inference_mode`` (off again after)."""
    with torch.inference_mode():
        return model(attention_mask=mask, use_cache=True, **kwargs)


def _step(
    model: nn.Module,
    args: ForwardArgs,
    state: LoopState,
    mask: torch.Tensor,
    kwargs: dict[str, Any],
    config: anymodal.GenerationConfig,
    generator: torch.Generator | None,
) -> int:
    """One forward (the prompt, or one fed id): the next id, the state's cache moved on."""
    try:
        outputs = run_forward(model, mask, kwargs)
    except BaseException:
        state.broken = True
        raise
    state.cache = getattr(outputs, args.cache)
    return next_token(outputs.logits[:, -1], config, generator)


class Holdback:
    """Ids pushed one at a time come out ``count`` ids late: the last ``count`` never do."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._held: deque[int] = deque()

    def push(self, token: int) -> int | None:
        """The id that ``token`` releases, or None while fewer than ``count`` came after the first."""
        self._held.append(token)
        return self._held.popleft() if len(self._held) > self._count else None


def drop_last(ids: Iterator[int], count: int) -> Iterator[int]:
    """``ids`` less its last ``count``: each id is yielded once ``count`` more have come after it.
    Closing this generator closes ``ids``, so the model stops decoding at once."""
    holdback = Holdback(count)
    try:
        for token in ids:
            released = holdback.push(token)
            if released is not None:
                yield released
    finally:
        close = getattr(ids, "close", None)
        if close is not None:
            close()


def next_token(
    logits: torch.Tensor, config: anymodal.GenerationConfig, generator: torch.Generator | None = None
) -> int:
    """Pick the next id from ``logits [1, vocab]``: argmax, or a temperature + top-p sample."""
    if config.greedy:
        return int(logits.argmax(dim=-1).item())
    probs = torch.softmax(logits.float() / config.temperature, dim=-1)
    if config.top_p < 1.0:
        # Stable sort: among equal probabilities the lowest id comes first, as with argmax.
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        keep = mass_before < config.top_p
        keep[..., 0] = True  # the most likely token always stays, so top_p -> 0 is greedy
        choice = torch.multinomial(sorted_probs * keep, num_samples=1, generator=generator)
        return int(order.gather(-1, choice).item())
    return int(torch.multinomial(probs, num_samples=1, generator=generator).item())
