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
