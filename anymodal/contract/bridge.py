"""The interface every LLM bridge implements, and the spec that registers one. Torch-free at import time."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anymodal.contract.specs import GenerationConfig, LLMSettings, LoraSettings, Message

if TYPE_CHECKING:
    import torch


class KVCache(ABC):
    """An LLM's attention keys and values over the first :attr:`length` positions of a sequence,
    as a bridge keeps them: what :meth:`Bridge.generate_cached` continues from instead of running
    those positions through the LLM again. Made and read by its bridge; the runtime only measures
    it, trims it and hands it back."""

    @property
    @abstractmethod
    def length(self) -> int:
        """How many positions it holds."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """The memory it holds."""

    @abstractmethod
    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions, in place."""

    @abstractmethod
    def prefix(self, length: int) -> KVCache:
        """A new cache of the first ``length`` positions, sharing nothing this one changes later."""


class CachedReply:
    """The reply of :meth:`Bridge.generate_cached`: its text pieces, one at a time (it is an
    iterator; closing it stops the generation). Once it has ended or been closed, :attr:`cache`
    holds the LLM's state over the prompt and :attr:`fed_ids`, the reply's ids that ran through
    the LLM, in order (``None`` when generation failed part-way and the state cannot be trusted)."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self.pieces = pieces
        self.cache: KVCache | None = None
        self.fed_ids: list[int] = []

    def __iter__(self) -> CachedReply:
        return self

    def __next__(self) -> str:
        return next(self.pieces)

    def close(self) -> None:
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()


class BatchRow(Iterator[str]):
    """One reply in a :class:`GenerationBatch`: an iterator of its text pieces (reading one whose
    pieces are all read steps the whole batch). :meth:`drain` takes the pieces waiting without
    stepping, for a caller that steps the batch itself; :meth:`close` takes the row out of the
    batch before its next forward. Once the row has ended, :attr:`finish_reason` says why
    (``stop``, ``length``, ``closed``, ``error``) and, for a row added with ``keep=True`` that ran
    to its end cleanly, :attr:`cache` holds the LLM's state over its prompt and :attr:`fed_ids`,
    as :class:`CachedReply` does."""

    finish_reason: str | None = None
    cache: KVCache | None = None
    fed_ids: list[int]

    @property
    def finished(self) -> bool:
        """Whether the row has ended (its pieces may still be waiting to be read)."""
        return self.finish_reason is not None

    @abstractmethod
    def drain(self) -> list[str]:
        """The pieces waiting to be read, without stepping the batch."""

    @abstractmethod
    def close(self) -> None:
        """End the reply here; the other rows go on."""


class GenerationBatch(ABC):
    """Replies decoded together, one forward per step for all of them (continuous batching): a
    row joins with :meth:`add` at the next :meth:`step`, whether or not others are mid-reply, and
    leaves the batch as it ends. One thread drives a batch."""

    @abstractmethod
    def add(
        self,
        inputs_embeds: torch.Tensor,
        config: GenerationConfig,
        past: KVCache | None = None,
        keep: bool = False,
    ) -> BatchRow:
        """A new row for the prompt whose first ``past.length`` positions ``past`` holds (none
        without it), ``inputs_embeds [1, seq, hidden]`` being the rest; with ``keep`` the row keeps
        its state at the end (:attr:`BatchRow.cache`). Its greedy reply is the one
        :meth:`Bridge.generate` gives for the whole prompt alone."""

    @abstractmethod
    def step(self) -> bool:
        """Advance every live row by one token (rows added since the last step run their prompts);
        then whether any row is still live or waiting to join."""

    @abstractmethod
    def close(self) -> None:
        """End every row and free the batch."""


class Bridge(ABC):
    """An LLM seen through token ids and embeddings.

    The runtime never calls the LLM another way: it tokenizes text, embeds ids, splices projected
    modality embeddings into ``inputs_embeds``, then runs :meth:`forward` (training) or
    :meth:`generate` (chat).
    """

    #: The LLM's embedding width, which projectors project into.
    hidden_size: int
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int

    @property
    @abstractmethod
    def module(self) -> torch.nn.Module:
        """The underlying ``nn.Module`` (wrapped in LoRA when :meth:`add_lora` was called)."""

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.module.parameters()).dtype

    @abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added (special-token text is honoured)."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens skipped."""

    def token_id(self, token: str) -> int | None:
        """The id of the vocabulary entry ``token`` (as the vocabulary spells it, not text to
        tokenize), or None when the vocabulary has no such entry. Templates with ``stop_tokens``
        need it; a bridge that cannot look tokens up says so."""
        from anymodal.contract.errors import UsageError

        raise UsageError(
            f"the {type(self).__name__} bridge cannot look up vocabulary tokens, which this template's "
            "stop_tokens need",
            hint="choose another template or another bridge",
        )

    @abstractmethod
    def chat_template_render(self, messages: Sequence[Message], add_generation_prompt: bool) -> str | None:
        """The tokenizer's own chat template applied to ``messages``, or None when it has none."""

    @abstractmethod
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[batch, seq] -> [batch, seq, hidden_size]`` through the LLM's input embeddings."""

    @abstractmethod
    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(loss, logits)``; loss is None without labels; labels use -100 for ignored positions."""

    @abstractmethod
    def generate(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        config: GenerationConfig,
    ) -> Iterator[str]:
        """Stream the reply to one prompt (batch 1) as text pieces, honouring ``config.stop``,
        ``config.stop_token_ids`` and ``config.trim_tokens`` (see :class:`GenerationConfig`)."""

    #: Whether :meth:`generate_cached` works: the LLM's state can be kept between replies and trimmed.
    supports_kv_cache: bool = False

    def generate_cached(
        self, inputs_embeds: torch.Tensor, config: GenerationConfig, past: KVCache | None
    ) -> CachedReply:
        """:meth:`generate` for a prompt whose first ``past.length`` positions ``past`` already holds
        (none when ``past`` is None): ``inputs_embeds [1, seq, hidden]`` are the positions after
        them, all attended to. The reply's :attr:`~CachedReply.cache` continues ``past`` (which it
        may extend in place: pass a :meth:`~KVCache.prefix` to keep the original). Greedy replies
        are the ones :meth:`generate` gives for the whole prompt."""
        from anymodal.contract.errors import UsageError

        raise UsageError(f"the {type(self).__name__} bridge cannot keep the LLM's cache between replies")

    #: Whether :meth:`open_batch` works, and :meth:`generate_batch` decodes its prompts together
    #: (one forward per step for all of them) rather than one after another, as the default does.
    supports_batching: bool = False

    def open_batch(self) -> GenerationBatch:
        """An empty :class:`GenerationBatch` to :meth:`~GenerationBatch.add` replies to as they come."""
        from anymodal.contract.errors import UsageError

        raise UsageError(f"the {type(self).__name__} bridge cannot decode replies together")

    def generate_batch(
        self, prompts: Sequence[torch.Tensor], configs: Sequence[GenerationConfig]
    ) -> list[Iterator[str]]:
        """The replies to several prompts, ``inputs_embeds [1, seq_i, hidden]`` each with every
        position attended to, and one :class:`GenerationConfig` each: one stream of text pieces per
        prompt, in order, each the one :meth:`generate` streams for that prompt alone (greedy
        replies are the same). Closing one stream ends that reply and no other.

        This default generates them one at a time, each stream when it is read; a bridge with
        :attr:`supports_batching` runs them together."""
        if len(prompts) != len(configs):
            raise ValueError(f"{len(prompts)} prompts but {len(configs)} generation configs")
        return [
            self.generate(prompt, prompt.new_ones(prompt.shape[:2]).long(), config)
            for prompt, config in zip(prompts, configs, strict=True)
        ]

    @abstractmethod
    def add_lora(self, settings: LoraSettings) -> None:
        """Wrap the LLM in LoRA adapters; only the adapters stay trainable."""

    @abstractmethod
    def save(self, directory: Path, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
        """Write the LLM (or only its adapter when LoRA-wrapped) and tokenizer to ``directory``.

        ``state_dict``: the module's full state dict when its own parameters are sharded (ZeRO-3,
        FSDP) and were gathered elsewhere; None reads the parameters in place.
        """

    def export(self, directory: Path) -> None:
        """Write the LLM with any LoRA adapter merged into its weights, and its tokenizer, as a plain
        model directory of this bridge's format (``anymodal export``). The bridge is spent after."""
        from anymodal.contract.errors import UsageError

        raise UsageError(f"the {type(self).__name__} bridge cannot export a merged model")

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass to save memory (``train.gradient_checkpointing``)."""
        from anymodal.contract.errors import UsageError

        raise UsageError(
            f"the {type(self).__name__} bridge does not support gradient checkpointing",
            hint="set train.gradient_checkpointing=false",
        )


@dataclass(frozen=True)
class BridgeSpec:
    """How an LLM family is loaded. load(settings, device, dtype) returns a :class:`Bridge`."""

    name: str
    load: Callable[[LLMSettings, str, str], Bridge]
    description: str = ""
