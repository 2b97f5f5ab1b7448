"""Batched decoding: several prompts through one forward per step, each reply streamed on its own,
rows joining and leaving the batch as they come and end (continuous batching).

The design: a :class:`BatchedDecoder` owns the batch (its rows' attention mask and KV cache) and
one :class:`BatchedRow` per prompt added (:meth:`~BatchedDecoder.add`). :meth:`BatchedDecoder.step`
advances every live row by one token: it feeds every row in the batch its last id, then runs the
prompts of the rows added since the last step (those with no past together, left-padded to the
longest; one continuing a kept cache alone, after it) and joins them to the batch
(:func:`~anymodal_hf.rows.join_rows`: each part right-aligned, zeros on the left under a 0 in
the mask). Each id goes at once through its row's own pipeline (the end test of
:func:`~anymodal_hf.generation.judge`, the ``trim_tokens`` hold-back,
:class:`~anymodal_hf.streaming.IncrementalDetokenizer` and
:class:`~anymodal_hf.streaming.StopStringFilter`), so a row ends on the step that ends it (EOS or a
stop id, ``max_new_tokens``, a stop string completed in its text) whoever reads it, and its text
pieces wait in the row until read. A row is an iterator of those pieces, as
:meth:`HFBridge.generate <anymodal_hf.bridge.HFBridge.generate>` returns: reading one whose pieces
are all read runs :meth:`~BatchedDecoder.step` (which moves the other rows on too), and closing one
takes it out of the batch before the next forward, the others going on as they were. Rows that
have ended leave the batch, and the KV cache, at the end of the step that ends them (or the start
of the next, for one closed between steps), so the forward shrinks with them; a row added with
``keep`` takes its own part of the cache with it (:func:`~anymodal_hf.rows.row_cache`), to be
continued later. A model whose cache keeps a window or a state cannot join rows to a running
batch: they wait until it empties.

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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
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
from anymodal_hf.kv import HFKVCache
from anymodal_hf.rows import join_rows, joinable, row_cache, select_rows
from anymodal_hf.streaming import Decode, IncrementalDetokenizer, StopStringFilter

#: Why a row ended: ``stop`` (EOS, a stop id or a stop string), ``length`` (max_new_tokens),
#: ``closed`` (its consumer closed it), ``error`` (a forward of the batch failed).
FinishReason = Literal["stop", "length", "closed", "error"]


class BatchedRow(anymodal.BatchRow):
    """One prompt's reply in a :class:`BatchedDecoder`: an iterator of its text pieces.

    :attr:`ids` are the reply's token ids so far (after ``trim_tokens``: those
    :meth:`~anymodal_hf.bridge.HFBridge.generate_ids` yields); :attr:`finish_reason` is None while
    the row is live. :meth:`close` takes it out of the batch. A row made with ``keep`` gets its
    :attr:`cache` (an :class:`~anymodal_hf.kv.HFKVCache`) when it leaves the batch.
    """

    def __init__(
        self,
        decoder: BatchedDecoder,
        config: anymodal.GenerationConfig,
        eos_token_ids: Collection[int],
        decode: Decode,
        generator: torch.Generator | None,
        keep: bool = False,
    ) -> None:
        self.config = config
        self.keep = keep
        self.ids: list[int] = []
        self.fed_ids: list[int] = []
        self.cache: anymodal.KVCache | None = None
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


class BatchedDecoder(anymodal.GenerationBatch):
    """Decode the replies to several prompts at once, rows joining as they come; see the module
    docstring.

    ``eos_token_ids`` end every row (each row's ``stop_token_ids`` end that row); ``decode`` turns
    ids into text; prompts are moved to ``device`` and ``dtype``. Rows come with :meth:`add`;
    nothing runs until the next :meth:`step`.
    """

    def __init__(
        self,
        model: nn.Module,
        eos_token_ids: Collection[int],
        decode: Decode,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self._model = model
        self._args = ForwardArgs(model)
        self._eos = frozenset(eos_token_ids)
        self._decode = decode
        self._device = device
        self._dtype = dtype
        self._waiting: list[Joining] = []  # added, not yet run
        self._batch: list[BatchedRow] = []  # the rows in the cache, in its batch order
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self.error: BaseException | None = None

    def add(
        self,
        inputs_embeds: torch.Tensor,
        config: anymodal.GenerationConfig,
        past: anymodal.KVCache | None = None,
        keep: bool = False,
    ) -> BatchedRow:
        """A row for ``inputs_embeds [1, seq, hidden]`` after ``past``'s positions (an
        :class:`~anymodal_hf.kv.HFKVCache`, extended in place); it joins at the next step."""
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[0] != 1 or inputs_embeds.shape[1] == 0:
            raise ValueError(
                f"a prompt must be one non-empty prompt [1, seq, hidden], got {tuple(inputs_embeds.shape)}"
            )
        if past is not None and not isinstance(past, HFKVCache):
            raise TypeError(f"the hf bridge continues only its own caches, not a {type(past).__name__}")
        if self.error is not None:
            raise RuntimeError("a forward of the batch failed") from self.error
        row = BatchedRow(self, config, self._eos, self._decode, seeded_generator(config, self._device), keep)
        prompt = inputs_embeds.to(device=self._device, dtype=self._dtype)
        self._waiting.append(Joining(row, prompt, None if past is None else past.cache))
        return row

    @property
    def batch_size(self) -> int:
        """How many rows the last forward ran (0 before the first and once none is left)."""
        return len(self._batch)

    @property
    def live(self) -> list[BatchedRow]:
        """The rows still generating, those waiting to join included."""
        rows = [*(item.row for item in self._waiting), *self._batch]
        return [row for row in rows if not row.finished]

    def step(self) -> bool:
        """Advance every live row by one token, rows added since the last step running their
        prompts; then whether any row is still live. Once none is, a no-op. A failing forward ends
        every row ("error") and raises; the rows then raise when read past their waiting pieces."""
        if self.error is not None:
            raise RuntimeError("a forward of the batch failed") from self.error
        try:
            self._drop_finished()
            joining = self._joining()
            if self._batch:
                self._pick(self._batch, self._feed())
            if joining:
                self._join(joining)
            self._drop_finished()
        except BaseException as error:
            self.error = error
            for row in self.live:
                row.fail()
            self._waiting.clear()
            self._release()
            raise
        return bool(self.live)

    def close(self) -> None:
        """End every row and free the batch's cache."""
        for row in self.live:
            row.close()
        self._waiting.clear()
        self._drop_finished()

    def _joining(self) -> list[Joining]:
        """The waiting rows that join at this step: all of them, unless the batch's cache cannot
        take rows in (then they wait for it to empty)."""
        waiting = [item for item in self._waiting if not item.row.finished]
        if self._batch and not joinable(self._cache):
            self._waiting = waiting
            return []
        self._waiting = []
        return waiting

    def _join(self, joining: list[Joining]) -> None:
        """Run the joining rows' prompts (those with no past together, left-padded to the longest;
        each with a past alone, after it), give each its first id, and join them to the batch."""
        fresh = [item for item in joining if item.past is None]
        groups = [fresh] if fresh else []
        groups += [[item] for item in joining if item.past is not None]
        parts: list[tuple[Any, torch.Tensor]] = []
        if self._batch:
            assert self._mask is not None
            parts.append((self._cache, self._mask))
        for group in groups:
            logits, cache, mask = self._prefill(group)
            rows = [item.row for item in group]
            self._pick(rows, logits)
            self._batch += rows
            parts.append((cache, mask))
        if len(parts) > 1 and not all(joinable(cache) for cache, _ in parts):
            raise TypeError("these KV caches cannot be joined into one batch")
        self._cache, self._mask = join_rows(parts) if len(parts) > 1 else parts[0]

    def _prefill(self, group: list[Joining]) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """One forward over ``group``'s prompts, left-padded to the longest, after the group's one
        past when it has one: the last positions' logits, the cache and its attention mask."""
        longest = max(item.prompt.shape[1] for item in group)
        first = group[0].prompt
        embeds = first.new_zeros((len(group), longest, first.shape[2]))
        mask = torch.zeros((len(group), longest), dtype=torch.long, device=self._device)
        for j, item in enumerate(group):
            embeds[j, longest - item.prompt.shape[1] :] = item.prompt[0]
            mask[j, longest - item.prompt.shape[1] :] = 1
        past = group[0].past
        if past is not None:  # a group of one: its past positions are all real
            mask = torch.cat([mask.new_ones((1, int(past.get_seq_length()))), mask], dim=1)
        kwargs = prompt_inputs(self._args, embeds, mask)
        if past is not None:
            kwargs[self._args.cache] = past
        outputs = run_forward(self._model, mask, kwargs)
        logits: torch.Tensor = outputs.logits[:, -1]
        return logits, getattr(outputs, self._args.cache), mask

    def _feed(self) -> torch.Tensor:
        """One forward of every row in the batch's last id."""
        assert self._mask is not None
        for row in self._batch:
            assert row.last is not None
            row.fed_ids.append(row.last)
        fed = torch.tensor([[row.last] for row in self._batch], device=self._device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self._batch), 1))], dim=1)
        outputs = run_forward(self._model, self._mask, token_inputs(self._args, fed, self._mask, self._cache))
        self._cache = getattr(outputs, self._args.cache)
        logits: torch.Tensor = outputs.logits[:, -1]
        return logits

    def _pick(self, rows: Sequence[BatchedRow], logits: torch.Tensor) -> None:
        """Each row's next id from its row of ``logits [rows, vocab]``, handed to it."""
        greedy = [row.config.greedy for row in rows]
        argmax = logits.argmax(dim=-1).tolist() if any(greedy) else []
        for j, row in enumerate(rows):
            token = argmax[j] if greedy[j] else next_token(logits[j : j + 1], row.config, row.generator)
            row.accept(int(token))

    def _drop_finished(self) -> None:
        """Take the rows that have ended out of the batch, the mask and the KV cache, keeping the
        state of each that asked for it (and did not fail)."""
        leaving = [j for j, row in enumerate(self._batch) if row.finished]
        if not leaving:
            return
        assert self._mask is not None
        for j in leaving:
            row = self._batch[j]
            if row.keep and row.finish_reason != "error" and joinable(self._cache):
                start = int((self._mask[j] == 0).sum())
                row.cache = HFKVCache(row_cache(self._cache, j, start))
        keep = [j for j, row in enumerate(self._batch) if not row.finished]
        if not keep:
            self._release()
            return
        index = torch.tensor(keep, device=self._mask.device)
        with torch.inference_mode():
            self._cache = select_rows(self._cache, index)
        self._mask = self._mask[index]
        self._batch = [self._batch[j] for j in keep]

    def _release(self) -> None:
        self._batch, self._cache, self._mask = [], None, None


@dataclass
class Joining:
    """A row added and not yet run: its prompt, and the cache of what comes before it (or None)."""

    row: BatchedRow
    prompt: torch.Tensor
    past: Any
