"""The hf bridge: any Hugging Face causal LM, seen by anymodal through token ids and embeddings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

import anymodal
from anymodal_hf import loading, lora
from anymodal_hf.batched import BatchedDecoder, BatchedRow
from anymodal_hf.generation import ForwardArgs, LoopState, decode_loop, drop_last
from anymodal_hf.kv import HFKVCache, croppable
from anymodal_hf.streaming import stream_text


class HFBridge(anymodal.Bridge):
    """A loaded ``AutoModelForCausalLM`` and its tokenizer.

    Build it with :meth:`load`, which freezes the LLM's own weights: anymodal trains projectors
    and, in stage 2, LoRA adapters (:meth:`add_lora`), never the full LLM. The constructor takes a
    model and tokenizer as they are (tests wrap hand-built models this way).
    """

    def __init__(self, model: nn.Module, tokenizer: Any) -> None:
        # A transformers PreTrainedModel (or a PEFT wrapper): typed loosely, its API is dynamic.
        self._model: Any = cast(Any, model)  # a bare Any would be narrowed back to nn.Module
        self.tokenizer = tokenizer
        self._ensure_pad_token()
        self.bos_token_id = tokenizer.bos_token_id
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.hidden_size = int(self._model.get_input_embeddings().weight.shape[-1])
        self._args = ForwardArgs(model)

    @classmethod
    def load(cls, settings: anymodal.LLMSettings, device: str, dtype: str) -> HFBridge:
        """Load from ``settings.path`` (directory or hub id) onto ``device`` in ``dtype``.

        Raises :class:`anymodal.UsageError` for bad options, device or dtype, and
        :class:`anymodal.ModelLoadError` for a model, tokenizer or adapter that cannot be loaded.
        """
        options = loading.parse_options(settings.options)
        torch_dtype = loading.resolve_dtype(dtype)
        torch_device = loading.check_device(device)
        source = loading.resolve_source(settings.path, options)
        config = loading.load_config(source, options)
        tokenizer = loading.load_tokenizer(source, options)
        model = loading.load_model(source, options, config, torch_dtype, torch_device)
        model.requires_grad_(False)
        if settings.adapter:
            model = loading.load_adapter(model, settings.adapter)
        return cls(model.eval(), tokenizer)

    @property
    def module(self) -> nn.Module:
        return self._model

    @property
    def eos_token_ids(self) -> set[int]:
        """Every id that ends a reply: the tokenizer's eos and the generation config's (which may list
        several, e.g. Llama 3's ``<|eot_id|>``)."""
        ids = {self.eos_token_id} if self.eos_token_id is not None else set()
        generation_config = getattr(self._model, "generation_config", None)
        configured = getattr(generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif isinstance(configured, (list, tuple)):
            ids.update(int(i) for i in configured)
        return ids

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def token_id(self, token: str) -> int | None:
        """The id of the vocabulary entry ``token`` (LLaMA's ``"##"`` is 2277), or None."""
        found = self.tokenizer.get_vocab().get(token)
        return None if found is None else int(found)

    def decode(self, ids: Sequence[int]) -> str:
        return str(
            self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        )

    def chat_template_render(
        self, messages: Sequence[anymodal.Message], add_generation_prompt: bool
    ) -> str | None:
        if not getattr(self.tokenizer, "chat_template", None):
            return None
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        try:
            rendered = self.tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except Exception as error:  # jinja raises its own errors, e.g. "roles must alternate"
            raise anymodal.UsageError(
                f"the tokenizer's chat template rejected the conversation: {error}",
                hint="set model.template to a named template instead of auto",
            ) from error
        return str(rendered)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[batch, seq] -> [batch, seq, hidden_size]``."""
        embeddings: torch.Tensor = self._model.get_input_embeddings()(input_ids.to(self.device))
        return embeddings

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``inputs_embeds [batch, seq, hidden]``, ``attention_mask [batch, seq]``, ``labels [batch, seq]``
        (-100 ignored; shifted inside) -> ``(loss or None, logits [batch, seq, vocab])``."""
        outputs = self._model(
            inputs_embeds=inputs_embeds.to(self.dtype),
            attention_mask=attention_mask,
            labels=labels,
            use_cache=False,
            **self._args.positions(attention_mask),
        )
        return outputs.loss, outputs.logits

    def generate(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        config: anymodal.GenerationConfig,
    ) -> Iterator[str]:
        """Stream the reply to one prompt ``inputs_embeds [1, seq, hidden]`` as text pieces."""
        ids = self.generate_ids(inputs_embeds, attention_mask, config)
        return stream_text(ids, self.decode, config.stop)

    def generate_ids(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        config: anymodal.GenerationConfig,
        state: LoopState | None = None,
    ) -> Iterator[int]:
        """The reply's token ids, before detokenization and stop strings.

        The reply ends at EOS or an id of ``config.stop_token_ids``, or after max_new_tokens ids.
        ``config.trim_tokens`` None: the ending id is not part of the reply. n: the reply is every
        generated id, the ending one included, less the last n (PandaGPT's ``output_ids[:-2]``),
        so each id comes n ids late. ``state``: see :func:`~anymodal_hf.generation.decode_loop`.
        """
        trim = config.trim_tokens
        ids = decode_loop(
            self._model,
            inputs_embeds.to(device=self.device, dtype=self.dtype),
            attention_mask.to(self.device),
            config,
            self.eos_token_ids | set(config.stop_token_ids),
            keep_end=trim is not None,
            state=state,
        )
        return ids if trim is None else drop_last(ids, trim)

    supports_kv_cache = True

    def generate_cached(
        self, inputs_embeds: torch.Tensor, config: anymodal.GenerationConfig, past: anymodal.KVCache | None
    ) -> anymodal.CachedReply:
        """:meth:`generate` over ``past``'s positions and then ``inputs_embeds [1, seq, hidden]``;
        ``past`` (an :class:`~anymodal_hf.kv.HFKVCache`) is extended in place."""
        if past is not None and not isinstance(past, HFKVCache):
            raise TypeError(f"the hf bridge continues only its own caches, not a {type(past).__name__}")
        state = LoopState(cache=None if past is None else past.cache)
        positions = (0 if past is None else past.length) + inputs_embeds.shape[1]
        mask = torch.ones((1, positions), dtype=torch.long, device=self.device)
        ids = self.generate_ids(inputs_embeds, mask, config, state)
        reply = anymodal.CachedReply(iter(()))

        def pieces() -> Iterator[str]:
            try:
                yield from stream_text(ids, self.decode, config.stop)
            finally:
                reply.fed_ids = list(state.fed)
                if not state.broken and state.cache is not None and croppable(state.cache):
                    extended = past is not None and state.cache is past.cache
                    reply.cache = past if extended else HFKVCache(state.cache)

        reply.pieces = pieces()
        return reply

    supports_batching = True

    def open_batch(self) -> BatchedDecoder:
        """An empty :class:`~anymodal_hf.batched.BatchedDecoder` to add prompts to as they come."""
        return BatchedDecoder(self._model, self.eos_token_ids, self.decode, self.device, self.dtype)

    def generate_batch(
        self, prompts: Sequence[torch.Tensor], configs: Sequence[anymodal.GenerationConfig]
    ) -> list[Iterator[str]]:
        """The replies to ``prompts`` (``inputs_embeds [1, seq_i, hidden]`` each), decoded together:
        each a :class:`~anymodal_hf.batched.BatchedRow`, streaming as :meth:`generate` does alone."""
        return list(self.batch_decoder(prompts, configs)[1])

    def batch_decoder(
        self, prompts: Sequence[torch.Tensor], configs: Sequence[anymodal.GenerationConfig]
    ) -> tuple[BatchedDecoder, list[BatchedRow]]:
        """:meth:`open_batch` with ``prompts`` added, one config each, and their rows."""
        if len(prompts) != len(configs):
            raise ValueError(f"{len(prompts)} prompts but {len(configs)} generation configs")
        decoder = self.open_batch()
        rows = [decoder.add(prompt, config) for prompt, config in zip(prompts, configs, strict=True)]
        return decoder, rows

    def add_lora(self, settings: anymodal.LoraSettings) -> None:
        if _is_peft(self._model):
            # An adapter loaded with model.llm.adapter: train it further rather than stack another.
            lora.train_loaded_adapter(self._model, settings)
        else:
            self._model = lora.add_lora(self._model, settings)
        self._args = ForwardArgs(self._model)

    def save(self, directory: Path, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
        """LoRA-wrapped: the adapter in PEFT format (adapter_config.json, adapter_model.safetensors);
        otherwise the whole model (config.json, model.safetensors). The tokenizer either way."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = None if state_dict is None else dict(state_dict)
        self._model.save_pretrained(str(directory), state_dict=state)
        self.tokenizer.save_pretrained(str(directory))

    def export(self, directory: Path) -> None:
        """A plain transformers directory: LoRA merged in (PEFT's merge_and_unload), no adapter left."""
        model = self._model.merge_and_unload() if _is_peft(self._model) else self._model
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))

    def enable_gradient_checkpointing(self) -> None:
        # Non-reentrant checkpointing lets gradients reach the projectors through inputs_embeds.
        # transformers 5 renamed the method; 4.x has only the old name.
        enable = getattr(self._model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            self._model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def _ensure_pad_token(self) -> None:
        """Batches need a pad id; many causal LM tokenizers have none, so borrow eos (or unk)."""
        tokenizer = self.tokenizer
        if tokenizer.pad_token is None:
            borrowed = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
            if borrowed is not None:
                tokenizer.pad_token = borrowed


def _is_peft(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)
