"""Batched decoding: several prompts through one forward per step, each reply streamed on its own.

The design: a :class:`BatchedDecoder` owns the batch (the padded prompts, their attention mask and
the KV cache) and one :class:`BatchedRow` per prompt. :meth:`BatchedDecoder.step` advances every
live row by one token: the first step is one forward over all the prompts, left-padded to the
longest; each later one feeds every live row its last id. Each id goes at once through its row's
own pipeline (the end test of :func:`~anymodal_hf.generation.judge`, the ``trim_tokens`` hold-back,
:class:`~anymodal_hf.streaming.IncrementalDetokenizer` and
:class:`~anymodal_hf.streaming.StopStringFilter`), so a row ends on the step that ends it (EOS or a
stop id, ``max_new_tokens``, a stop string completed in its text) whoever reads it, and its text
pieces wait in the row until read. A row is an iterator of those pieces, as
:meth:`HFBridge.generate <anymodal_hf.bridge.HFBridge.generate>` returns: reading one whose pieces
are all read runs :meth:`~BatchedDecoder.step` (which moves the other rows on too), and closing one
takes it out of the batch before the next forward, the others going on as they were. Rows that
have ended leave the batch, and the KV cache, at the next step (``batch_select_indices``, which
the caches of transformers 4.45+ and 5.x have; legacy tuples are indexed directly), so the forward
shrinks with them.

Two ways to drive it: read the rows (each read steps the whole batch when that row has nothing
waiting, so reading them in any order works), or, as a server would, call
:meth:`~BatchedDecoder.step` in a loop and :meth:`~BatchedRow.drain` every row after each step.
Neither is thread-safe: one thread drives a decoder.

Every row's reply is the one its prompt gets alone. The padding is masked out and the position
ids count real tokens only (:meth:`~anymodal_hf.generation.ForwardArgs.positions`), so greedy ids
are the same up to the float rounding of a differently shaped forward (a near-tie between two
logits could tip); a sampling row draws from its own generator seeded from its config's seed, so
it draws what it draws alone. A model whose forward takes no ``position_ids`` sees padded rows
shifted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import nn

import anymodal
from anymodal_hf.generation import (
    ForwardArgs,
    Holdback,
    judge,
    next_token,
    prompt_inputs,
    run_forward,
    seeded_generator,
    token_inputs,
)
from anymodal_hf.streaming import Decode, IncrementalDetokenizer, StopStringFilter

#: Why a row ended: ``stop`` (EOS, a stop id or a stop string), ``length`` (max_new_tokens),
#: ``closed`` (its consumer closed it), ``error`` (a forward of the batch failed).
FinishReason = Literal["stop", "length", "closed", "error"]


class BatchedRow(Iterator[str]):
    """One prompt's reply in a :class:`BatchedDecoder`: an iterator of its text pieces.

    :attr:`ids` are the reply's token ids so far (after ``trim_tokens``: those
    :meth:`~anymodal_hf.bridge.HFBridge.generate_ids` yields); :attr:`finish_reason` is None while
    the row is live. :meth:`close` takes it out of the batch.
    """

    def __init__(
        self,
        decoder: BatchedDecoder,
        index: int,
        config: anymodal.GenerationConfig,
        eos_token_ids: Collection[int],
        decode: Decode,
        generator: torch.Generator | None,
    ) -> None:
        self.index = index
        self.config = config
        self.ids: list[int] = []
        self.finish_reason: FinishReason | None = None
        self.generator = generator
        self._decoder = decoder
        self._end_ids = frozenset(eos_token_ids) | frozenset(config.stop_token_ids)
        self._keep_end = config.trim_tokens is not None
        self._holdback = None if config.trim_tokens is None else Holdback(config.trim_tokens)
        self._detokenizer = IncrementalDetokenizer(decode)
        self._stops = StopStringFilter(config.stop)
        self._pieces: deque[str] = deque()
        self._generated = 0
        #: The id to feed at the next step (the last one generated), while the row is live.
        self.last: int | None = None
        if config.max_new_tokens <= 0:
            self.finish_reason = "length"

    @property
    def finished(self) -> bool:
        """Whether the row has ended (its pieces may still be waiting to be read)."""
        return self.finish_reason is not None

    def __next__(self) -> str:
        while not self._pieces:
            if self.finish_reason == "error":
                raise RuntimeError("a forward of the batch failed") from self._decoder.error
            if self.finish_reason is not None:
                raise StopIteration
            self._decoder.step()
        return self._pieces.popleft()

    def drain(self) -> list[str]:
        """The pieces waiting to be read, without stepping the batch."""
        pieces = list(self._pieces)
        self._pieces.clear()
        return pieces

    def close(self) -> None:
        """End the reply here: the row leaves the batch before the next forward; unread pieces go."""
        if self.finish_reason is None:
            self._finish("closed")
        self._pieces.clear()

    def accept(self, token: int) -> None:
        """Take the row's next generated id: release what it completes, and end the row if it ends."""
        self._generated += 1
        keep, last = judge(token, self._generated, self.config, self._end_ids, self._keep_end)
        if keep:
            released = token if self._holdback is None else self._holdback.push(token)
            if released is not None:
                self.ids.append(released)
                self._emit(self._stops.push(self._detokenizer.push(released)))
                if self._stops.stopped:
                    self._finish("stop")
                    return
        if last:
            self._emit(self._stops.push(self._detokenizer.flush()) + self._stops.flush())
            self._finish("stop" if token in self._end_ids else "length")
        else:
            self.last = token

    def fail(self) -> None:
        """End the row because a forward of its batch failed: reading past its pieces raises."""
        self._finish("error")

    def _emit(self, piece: str) -> None:
        if piece:
            self._pieces.append(piece)

    def _finish(self, reason: FinishReason) -> None:
        self.finish_reason = reason
        self.last = None


class BatchedDecoder:
    """Decode the replies to several prompts at once; see the module docstring.

    ``prompts``: one ``inputs_embeds [1, seq_i, hidden]`` per row, every position a real token,
    all on one device in the model's dtype; ``configs``: one :class:`anymodal.GenerationConfig`
    per row. ``eos_token_ids`` end every row (each row's ``stop_token_ids`` end that row);
    ``decode`` turns ids into text. Nothing runs until the first :meth:`step`.
    """

    def __init__(
        self,
        model: nn.Module,
        prompts: Sequence[torch.Tensor],
        configs: Sequence[anymodal.GenerationConfig],
        eos_token_ids: Collection[int],
        decode: Decode,
    ) -> None:
        if len(prompts) != len(configs):
            raise ValueError(f"{len(prompts)} prompts but {len(configs)} generation configs")
        for i, prompt in enumerate(prompts):
            if prompt.dim() != 3 or prompt.shape[0] != 1 or prompt.shape[1] == 0:
                raise ValueError(
                    f"prompt {i} must be one non-empty prompt [1, seq, hidden], got {tuple(prompt.shape)}"
                )
        if len({prompt.shape[2] for prompt in prompts}) > 1:
            raise ValueError(f"the prompts' widths differ: {[prompt.shape[2] for prompt in prompts]}")
        self._model = model
        self._args = ForwardArgs(model)
        self._device = prompts[0].device if prompts else torch.device("cpu")
        self.rows = [
            BatchedRow(self, i, config, eos_token_ids, decode, seeded_generator(config, self._device))
            for i, config in enumerate(configs)
        ]
        self._prompts: list[torch.Tensor] | None = [p.to(self._device) for p in prompts]
        self._batch: list[BatchedRow] = []  # the rows in the cache, in its batch order
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self.error: BaseException | None = None

    @property
    def batch_size(self) -> int:
        """How many rows the last forward ran (0 before the first and once none is left)."""
        return len(self._batch)

    @property
    def live(self) -> list[BatchedRow]:
        """The rows still generating."""
        return [row for row in self.rows if not row.finished]

    def step(self) -> bool:
        """Advance every live row by one token (the first step runs the prompts); then whether any
        row is still live. Once none is, a no-op. A failing forward ends every row ("error") and
        raises; the rows then raise when read past their waiting pieces."""
        if self.error is not None:
            raise RuntimeError("a forward of the batch failed") from self.error
        try:
            if self._prompts is not None:
                logits = self._prefill(self._prompts)
            else:
                self._drop_finished()
                if not self._batch:
                    return False
                logits = self._feed()
            self._pick(logits)
        except BaseException as error:
            self.error = error
            for row in self.live:
                row.fail()
            self._release()
            raise
        if not self.live:
            self._release()
        return bool(self.live)

    def close(self) -> None:
        """End every row and free the batch's cache."""
        for row in self.rows:
            row.close()
        self._release()

    def _prefill(self, prompts: list[torch.Tensor]) -> torch.Tensor:
        """One forward over the live rows' prompts, left-padded to the longest."""
        self._prompts = None
        self._batch = self.live
        if not self._batch:
            return torch.empty(0)
        chosen = [prompts[row.index] for row in self._batch]
        longest = max(prompt.shape[1] for prompt in chosen)
        first = chosen[0]
        embeds = first.new_zeros((len(chosen), longest, first.shape[2]))
        mask = torch.zeros((len(chosen), longest), dtype=torch.long, device=self._device)
        for j, prompt in enumerate(chosen):
            embeds[j, longest - prompt.shape[1] :] = prompt[0]
            mask[j, longest - prompt.shape[1] :] = 1
        self._mask = mask
        outputs = run_forward(self._model, mask, prompt_inputs(self._args, embeds, mask))
        self._cache = getattr(outputs, self._args.cache)
        logits: torch.Tensor = outputs.logits[:, -1]
        return logits

    def _feed(self) -> torch.Tensor:
        """One forward of every row in the batch's last id."""
        assert self._mask is not None
        fed = torch.tensor([[row.last] for row in self._batch], device=self._device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self._batch), 1))], dim=1)
        outputs = run_forward(self._model, self._mask, token_inputs(self._args, fed, self._mask, self._cache))
        self._cache = getattr(outputs, self._args.cache)
        logits: torch.Tensor = outputs.logits[:, -1]
        return logits

    def _pick(self, logits: torch.Tensor) -> None:
        """Each batch row's next id from ``logits [batch, vocab]``, handed to its row."""
        greedy = [row.config.greedy for row in self._batch]
        argmax = logits.argmax(dim=-1).tolist() if any(greedy) else []
        for j, row in enumerate(self._batch):
            token = argmax[j] if greedy[j] else next_token(logits[j : j + 1], row.config, row.generator)
            row.accept(int(token))

    def _drop_finished(self) -> None:
        """Take the rows that have ended out of the batch, the mask and the KV cache."""
        keep = [j for j, row in enumerate(self._batch) if not row.finished]
        if len(keep) == len(self._batch):
            return
        if not keep:
            self._release()
            return
        assert self._mask is not None
        index = torch.tensor(keep, device=self._mask.device)
        with torch.inference_mode():
            self._cache = select_rows(self._cache, index)
        self._mask = self._mask[index]
        self._batch = [self._batch[j] for j in keep]

    def _release(self) -> None:
        self._batch, self._cache, self._mask = [], None, None


def select_rows(cache: Any, index: torch.Tensor) -> Any:
    """``cache`` with only the batch rows ``index``: in place for a transformers ``Cache``
    (``batch_select_indices``, in 4.45+ and 5.x), a new tuple for the legacy tuple of
    ``(keys, values)`` per layer."""
    select = getattr(cache, "batch_select_indices", None)
    if callable(select):
        select(index)
        return cache
    if isinstance(cache, tuple):
        return tuple(tuple(tensor[index] for tensor in layer) for layer in cache)
    raise TypeError(f"cannot drop rows from a KV cache of type {type(cache).__name__}")
