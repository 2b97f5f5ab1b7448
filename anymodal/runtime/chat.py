"""A multi-turn chat with a model: history, attached inputs, streamed replies.

An input is encoded once per session: its projected embedding is cached by content (modality,
file hash, preprocessing options), so later turns that still show it in the history, or attach the
same file again, reuse it. The LLM's KV cache of the conversation so far is kept too
(:mod:`~anymodal.runtime.prefix_cache`, when the bridge can and ``generation.kv_cache_mb`` is not
0), so each turn runs only the positions after what the last one ran and kept. A failed turn
leaves the history and the attached files as they were.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from anymodal.config.schema import AnymodalConfig
from anymodal.contract.bridge import CachedReply, KVCache
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import Registry
from anymodal.contract.specs import GenerationConfig, Message, Role
from anymodal.runtime.model import AnyModalModel, PreparedInput, scatter_embeddings, sum_projected
from anymodal.runtime.prefix_cache import Position, PrefixStore, position_keys
from anymodal.runtime.processor import Attachment, PromptProcessor, Slot, Turn


@dataclass
class ChatTurn:
    """One exchange: the user's text, the inputs sent with it, and the reply (maybe cut short)."""

    user: str
    inputs: list[PreparedInput]
    reply: str = ""
    interrupted: bool = False


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation given whole (an HTTP request's ``messages``): its role, its
    text and, for a user message, the inputs sent with it."""

    role: Role
    text: str
    inputs: tuple[PreparedInput, ...] = ()


@dataclass
class TurnPrompt:
    """A turn about to be generated (:meth:`ChatSession.begin_turn`): the turn, the prompt's
    embeddings ``[1, seq, hidden]`` after the positions ``past`` holds (all of them when ``past``
    is None), how many tokens the whole prompt has (each input's included), and every prompt
    position's identity for the store of KV caches (empty without one)."""

    turn: ChatTurn
    embeds: torch.Tensor
    tokens: int
    past: KVCache | None = None
    keys: tuple[Position, ...] = ()


@dataclass
class ChatSession:
    model: AnyModalModel
    processor: PromptProcessor
    generation: GenerationConfig
    system_prompt: str | None = None
    history: list[ChatTurn] = field(default_factory=list)
    pending: list[PreparedInput] = field(default_factory=list)
    #: Number of inputs actually run through an encoder (the rest came from the cache).
    encoded_count: int = 0
    _cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    #: The LLM's KV caches to continue from; None runs every prompt from the start.
    prefixes: PrefixStore | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: AnymodalConfig, registry: Registry) -> ChatSession:
        model = AnyModalModel.from_config(config.model, registry)
        return cls.for_model(model, config, registry)

    @classmethod
    def for_model(cls, model: AnyModalModel, config: AnymodalConfig, registry: Registry) -> ChatSession:
        processor = model.prompt_processor(registry, extra_stop=tuple(config.generation.stop))
        settings = config.generation
        generation = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            temperature=settings.temperature,
            top_p=settings.top_p,
            stop=processor.generation_stop,
            seed=settings.seed,
            stop_token_ids=processor.stop_token_ids,
            trim_tokens=processor.template.trim_tokens,
        )
        prefixes = None
        if settings.kv_cache_mb > 0 and model.bridge.supports_kv_cache:
            prefixes = PrefixStore(int(settings.kv_cache_mb * 2**20))
        return cls(model, processor, generation, config.model.system_prompt, prefixes=prefixes)

    def attach(self, modality: str, path: str | Path) -> PreparedInput:
        """Check, decode and preprocess a file now, to send with the next message."""
        prepared = self.model.prepare(modality, path)
        _ = prepared.key  # hash the content now, as it is when the file was read
        self.pending.append(prepared)
        return prepared

    def attach_embedding(self, modality: str, embedding: Any) -> PreparedInput:
        """Send an input with the next message as its encoder's output instead of a file to encode:
        a tensor (pooled ``[dim]`` or features ``[tokens, dim]``), a mapping of ``features`` /
        ``pooled``, an EncoderOutput, or the path of a ``.pt`` / ``.safetensors`` file holding one
        (see :meth:`AnyModalModel.prepare_embedding`)."""
        if isinstance(embedding, (str, Path)):
            prepared = self.model.prepare_embedding_file(modality, embedding)
        else:
            prepared = self.model.prepare_embedding(modality, embedding)
        self.pending.append(prepared)
        return prepared

    def for_messages(
        self,
        messages: Sequence[ChatMessage],
        generation: GenerationConfig | None = None,
        cache: dict[str, torch.Tensor] | None = None,
    ) -> tuple[ChatSession, str]:
        """A new session for one stateless request, and the text to :meth:`ask` it.

        It shares this session's model, processor and cache of encodings (or uses ``cache``, a
        server's own), so an input encoded for one request is reused by the next; this session is
        left as it was. Its history is ``messages`` up to the last: system messages (any number,
        anywhere) together replace the system prompt; each user message and the assistant reply
        after it make one turn (consecutive messages of one role are joined by a newline, a reply
        with no user message before it gets an empty one); the last message must be the user's,
        and its inputs are attached. ``generation`` replaces this session's settings when given."""
        if not messages or messages[-1].role != "user":
            raise UsageError(
                "the last message must be the user's",
                hint="end the messages with the user message to answer",
            )
        system = [m.text for m in messages if m.role == "system"]
        turns: list[ChatTurn] = []
        replied = True  # whether the last turn has its assistant reply (a new user message starts one)
        for message in messages:
            if message.role == "system":
                continue
            if message.role not in ("user", "assistant"):
                raise UsageError(
                    f"unknown message role {message.role!r}", hint="use system, user or assistant"
                )
            if message.inputs and message.role != "user":
                raise UsageError(
                    f"a {message.role} message cannot carry inputs", hint="attach them to a user message"
                )
            if message.role == "user":
                if replied:
                    turns.append(ChatTurn(message.text, list(message.inputs)))
                    replied = False
                else:
                    turns[-1].user = _joined(turns[-1].user, message.text)
                    turns[-1].inputs.extend(message.inputs)
            else:
                if not turns:
                    turns.append(ChatTurn("", []))
                turns[-1].reply = _joined(turns[-1].reply, message.text)
                replied = True
        current = turns.pop()
        session = ChatSession(
            self.model,
            self.processor,
            generation or self.generation,
            "\n\n".join(system) if system else self.system_prompt,
            history=turns,
            pending=list(current.inputs),
            _cache=self._cache if cache is None else cache,
            prefixes=self.prefixes,
        )
        return session, current.user

    def fork(self, pending: Sequence[PreparedInput] = ()) -> ChatSession:
        """A new session with no history and ``pending`` attached, sharing this one's model,
        processor, settings, system prompt, encodings and kept KV caches: a fresh conversation
        about inputs this one may have encoded already."""
        return ChatSession(
            self.model,
            self.processor,
            self.generation,
            self.system_prompt,
            pending=list(pending),
            _cache=self._cache,
            prefixes=self.prefixes,
        )

    def reset(self) -> None:
        """Forget the conversation and attached files (cached encodings stay valid and are kept)."""
        self.history.clear()
        self.pending.clear()

    def ask(self, text: str) -> Iterator[str]:
        """Stream the reply to ``text`` (with the attached files). The turn joins the history when
        the reply ends, is stopped, or fails part-way, keeping what was said."""
        return self.reply(self.begin_turn(text))

    def reply(self, prompt: TurnPrompt) -> Iterator[str]:
        """Stream the reply to a prompt of :meth:`begin_turn` (what :meth:`ask` does with it)."""
        bridge = self.model.bridge
        if self.prefixes is None:
            embeds = prompt.embeds
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
            return self._stream(prompt, bridge.generate(embeds, mask, self.generation))
        return self._stream(prompt, bridge.generate_cached(prompt.embeds, self.generation, prompt.past))

    def begin_turn(self, text: str) -> TurnPrompt:
        """The prompt of the reply to ``text`` (with the attached files, which it takes): what
        :meth:`ask` runs, for a caller that generates it another way (the server's batch) and
        calls :meth:`end_turn` with the reply."""
        turn = ChatTurn(text, list(self.pending))
        prompt = self.processor.process(self._conversation(turn))
        inputs = [item for past in [*self.history, turn] for item in past.inputs]
        inputs_embeds = self._embed(prompt.input_ids, prompt.slots, inputs)
        self.pending.clear()
        tokens = len(prompt.input_ids)
        if self.prefixes is None:
            return TurnPrompt(turn, inputs_embeds, tokens)
        keys = position_keys(prompt.input_ids, prompt.slots, inputs)
        past, reused = self.prefixes.take(keys)
        return TurnPrompt(turn, inputs_embeds[:, reused:], tokens, past, keys)

    def end_turn(self, prompt: TurnPrompt, cache: KVCache | None = None, fed_ids: Sequence[int] = ()) -> None:
        """Add :meth:`begin_turn`'s turn, its reply in ``prompt.turn.reply``, to the history, and
        keep ``cache``, the LLM's state over the prompt and the reply's ``fed_ids``, when given."""
        self.history.append(prompt.turn)
        if cache is not None and self.prefixes is not None:
            self.prefixes.put((*prompt.keys, *fed_ids), cache)

    def unencoded(self) -> list[PreparedInput]:
        """The inputs the next prompt shows (the history's and those attached) not encoded yet."""
        inputs = [item for turn in self.history for item in turn.inputs] + list(self.pending)
        return [item for item in inputs if item.key not in self._cache]

    def remember(self, projected: dict[str, torch.Tensor]) -> None:
        """Keep projected inputs ``{content key: [tokens, hidden]}`` encoded elsewhere (the inputs
        of several sessions encoded together), for the prompts to take."""
        self._cache.update(projected)

    def _stream(self, prompt: TurnPrompt, pieces: Iterator[str]) -> Iterator[str]:
        turn = prompt.turn
        turn.interrupted = True
        try:
            for piece in pieces:
                turn.reply += piece
                yield piece
            turn.interrupted = False
        finally:
            if isinstance(pieces, CachedReply):
                pieces.close()  # a reply stopped here: its cache is final once its generation ends
                self.end_turn(prompt, pieces.cache, pieces.fed_ids)
            else:
                self.end_turn(prompt)

    def _conversation(self, current: ChatTurn) -> list[Turn | Message]:
        conversation: list[Turn | Message] = []
        if self.system_prompt:
            conversation.append(Message("system", self.system_prompt))
        for turn in [*self.history, current]:
            attachments = tuple(
                Attachment(i.modality, self.model.tokens_per_input(i.modality)) for i in turn.inputs
            )
            conversation.append(Turn(Message("user", turn.user), attachments))
            if turn is not current:
                conversation.append(Message("assistant", turn.reply))
        return conversation

    def _embed(self, input_ids: list[int], slots: list[Slot], inputs: list[PreparedInput]) -> torch.Tensor:
        """``[1, seq, hidden]`` prompt embeddings with every input's projection in its slot (the
        inputs of the history and those attached, which :func:`encode_together` encodes)."""
        encode_together([self])
        cached = [self._cache[item.key] for item in inputs]
        slot_embeddings = [sum_projected(cached, slot.input_indices) for slot in slots]
        ids = torch.tensor([input_ids], device=self.model.device)
        with torch.no_grad():
            return scatter_embeddings(self.model.bridge.embed(ids), [slots], [slot_embeddings])


def encode_together(sessions: Sequence[ChatSession]) -> None:
    """Encode every input the sessions' next prompts show that is not encoded yet, together (one
    encoder batch per modality and shape, the same file once), into each session's cache."""
    wanted = [session.unencoded() for session in sessions]
    missing = {item.key: item for items in wanted for item in items}
    if not missing:
        return
    items = list(missing.values())
    projected = dict(zip(missing, sessions[0].model.encode(items), strict=True))
    for session, needs in zip(sessions, wanted, strict=True):
        session.remember({item.key: projected[item.key] for item in needs})
    sessions[0].encoded_count += sum(item.encoded is None for item in items)


def _joined(first: str, second: str) -> str:
    return f"{first}\n{second}" if first and second else first or second
