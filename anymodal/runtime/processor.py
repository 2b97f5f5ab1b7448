"""A conversation plus its inputs -> token ids, with slots where projected embeddings go.

A conversation is a list of :class:`Turn` (a :class:`anymodal.Message` and the inputs attached to
it; a bare ``Message`` is a turn without inputs). Inputs are numbered in conversation order, and
:class:`Slot` refers to them by that number. For every user message:

- each placeholder (``placeholders[modality]``, e.g. ``<image>``) takes the message's next input of
  that modality, so placeholders may sit anywhere in the text;
- inputs of a modality without any placeholder in the message are placed at its start, followed by
  ``"\\n"`` unless the span's close text already ends in whitespace (PandaGPT's ``"</Img> "``);
- a modality with placeholders but another number of inputs is a :class:`anymodal.UsageError`.

Placeholders in system and assistant messages are plain text. The template renders the messages;
then every input becomes ``open + [num_tokens pad ids] + close`` (``fusion="spans"``; open/close are
the template's span, else ``span_open``/``span_close`` with ``{name}`` = the modality), or, with
``fusion="sum"`` (PandaGPT), all inputs share ONE 1-token slot where the first input is and the
other placeholders are removed. The text between slots is tokenized piece by piece, with no
special tokens added, after the BOS id when the template asks for one and the tokenizer has one.
So PandaGPT's prompt becomes ``[bos] + tok("### Human: <Img>") + [pad] + tok("</Img> x\\n### Assistant:")``.

How a generated reply ends is the template's too: :attr:`PromptProcessor.generation_stop` (the
stop strings generation honours), :attr:`PromptProcessor.stop_token_ids` (its ``stop_tokens`` as
ids) and its ``trim_tokens`` go into :class:`anymodal.GenerationConfig`.

Training (``targets=True``): each assistant message's text, plus the template's text after it up
to and including the first stop string (``"</s>"``, ``"\\n###"`` ...), is tokenized on its own and
marked as a target; everything else is not. Spaces between the template's assistant prefix and the
reply go with the reply (the generation prompt ends at ``Assistant:``, so the first token the model
must produce is the reply's first word with its space). When no stop string follows an assistant message (the
``plain`` template's last reply), the tokenizer's EOS id is appended as a target instead, so the
model still learns to end its reply. The text is the same as for generation; only the token
boundaries around assistant text differ (PandaGPT's trainer also tokenizes them apart).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from anymodal.contract.errors import UsageError
from anymodal.contract.specs import Message, TemplateSpec
from anymodal.contract.wording import did_you_mean

# Private-use characters mark slots and message bounds while the template renders; any template
# copies them through untouched, and user text may not contain them.
_BEGIN, _END = "\ue000", "\ue001"
_MARKER = re.compile(f"{_BEGIN}([sbe])(\\d+){_END}")


class Tokenizer(Protocol):
    """What the processor needs from a tokenizer; :class:`anymodal.Bridge` has it."""

    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int

    def tokenize(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class Attachment:
    """One input attached to a message: its modality and how many tokens its projector makes."""

    modality: str
    num_tokens: int


@dataclass(frozen=True)
class Turn:
    """A message and the inputs attached to it (user messages only)."""

    message: Message
    inputs: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Slot:
    """``length`` positions from ``start`` in ``input_ids`` that receive projected embeddings.

    ``input_index`` is the input's number in the conversation; with fusion "sum" it is the tuple
    of all inputs (the runtime sums their vectors into the one position), and ``modality`` is the
    first input's.
    """

    modality: str
    input_index: int | tuple[int, ...]
    start: int
    length: int

    @property
    def input_indices(self) -> tuple[int, ...]:
        return self.input_index if isinstance(self.input_index, tuple) else (self.input_index,)


@dataclass(frozen=True)
class ProcessedPrompt:
    """Token ids (slot positions hold the pad id), the slots in order, and the text for display.

    ``targets`` (only with ``targets=True``) marks, per id, the assistant tokens to train on.
    """

    input_ids: list[int]
    slots: list[Slot]
    text: str
    targets: list[bool] | None = None


def _plural(count: int, noun: str) -> str:
    return f"{count or 'no'} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class PromptProcessor:
    """Builds :class:`ProcessedPrompt` for one model: its template, tokenizer and placeholders."""

    template: TemplateSpec
    tokenizer: Tokenizer
    #: Modality name -> placeholder text, for every enabled modality.
    placeholders: Mapping[str, str]
    fusion: Literal["spans", "sum"] = "spans"
    span_open: str = "<{name}>"
    span_close: str = "</{name}>"
    #: Stop strings added to the template's own (config ``generation.stop``, the EOS text, ...).
    extra_stop: tuple[str, ...] = ()
    #: The name a modality's span shows when it is not the modality's own: a modality read through
    #: another's projector (``projector.from``) is framed as that one, as PandaGPT frames every
    #: modality as an image.
    span_names: Mapping[str, str] = field(default_factory=dict)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.fusion not in ("spans", "sum"):
            raise UsageError(f"fusion must be 'spans' or 'sum', not {self.fusion!r}")
        texts = list(self.placeholders.values())
        if any(not text for text in texts) or len(set(texts)) != len(texts):
            raise UsageError(
                f"modality placeholders must be distinct and non-empty: {dict(self.placeholders)}"
            )
        # Longest first, so "<image>" never matches inside a longer placeholder that contains it.
        alternatives = sorted(texts, key=len, reverse=True)
        pattern = "|".join(re.escape(text) for text in alternatives) or "(?!)"
        object.__setattr__(self, "_pattern", re.compile(pattern))

    @property
    def stop(self) -> tuple[str, ...]:
        """Strings that end a reply: the template's own, then ``extra_stop``."""
        return tuple(dict.fromkeys(self.template.stop + self.extra_stop))

    @property
    def generation_stop(self) -> tuple[str, ...]:
        """The stop strings generation honours: :attr:`stop`, less the template's own when its
        ``stop_on_text`` is False (they then only mark where a reply ends, for training)."""
        own = self.template.stop if self.template.stop_on_text else ()
        return tuple(dict.fromkeys(own + self.extra_stop))

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        """The ids of the template's ``stop_tokens``, looked up in the tokenizer's vocabulary."""
        if not self.template.stop_tokens:
            return ()
        lookup = getattr(self.tokenizer, "token_id", None)
        if lookup is None:
            raise UsageError(
                f"template {self.template.name!r} stops on token ids, but this tokenizer cannot look "
                "tokens up in its vocabulary"
            )
        ids = []
        for token in self.template.stop_tokens:
            found = lookup(token)
            if found is None:
                raise UsageError(
                    f"template {self.template.name!r} stops on the token {token!r}, which this LLM's "
                    "vocabulary does not have",
                    hint="choose a template made for this LLM's tokenizer",
                )
            ids.append(int(found))
        return tuple(dict.fromkeys(ids))

    def span(self, modality: str) -> tuple[str, str]:
        """The (open, close) text around an input of ``modality``."""
        if self.template.span is not None:
            return self.template.span
        name = self.span_names.get(modality, modality)
        return self.span_open.format(name=name), self.span_close.format(name=name)

    def process(
        self,
        conversation: Sequence[Turn | Message],
        *,
        add_generation_prompt: bool = True,
        targets: bool = False,
    ) -> ProcessedPrompt:
        """Render, expand and tokenize ``conversation``; see the module docstring for the rules."""
        turns = [item if isinstance(item, Turn) else Turn(item) for item in conversation]
        inputs = self._check(turns)
        # slot number -> (modality, input_index, length)
        slots: dict[int, tuple[str, int | tuple[int, ...], int]] = {}
        if self.fusion == "sum" and inputs:
            slots[0] = (inputs[0].modality, tuple(range(len(inputs))), 1)
        else:
            slots = {i: (a.modality, i, a.num_tokens) for i, a in enumerate(inputs)}

        messages: list[Message] = []
        first = 0
        for position, turn in enumerate(turns):
            content = turn.message.content
            if turn.message.role == "user":
                content = self._place(content, turn.inputs, first)
            first += len(turn.inputs)
            if targets:
                content = f"{_BEGIN}b{position}{_END}{content}{_BEGIN}e{position}{_END}"
            messages.append(Message(turn.message.role, content))
        text = self.template.render(messages, add_generation_prompt)

        found = [int(number) for kind, number in _MARKER.findall(text) if kind == "s"]
        if sorted(found) != sorted(slots):
            raise UsageError(
                f"template {self.template.name!r} dropped or repeated an input while rendering "
                f"(inputs expected {sorted(slots)}, rendered {found}); choose another template"
            )
        roles = [turn.message.role for turn in turns]
        return self._tokenize(text, slots, roles, targets)

    def _check(self, turns: Sequence[Turn]) -> list[Attachment]:
        """All inputs in conversation order, after checking they can be placed."""
        inputs: list[Attachment] = []
        for turn in turns:
            if _BEGIN in turn.message.content or _END in turn.message.content:
                raise UsageError("a message contains the reserved characters U+E000/U+E001; remove them")
            if turn.inputs and turn.message.role != "user":
                raise UsageError(
                    f"inputs can only be attached to user messages, not to a {turn.message.role} one"
                )
            inputs.extend(turn.inputs)
        for attachment in inputs:
            if attachment.modality not in self.placeholders:
                enabled = ", ".join(sorted(self.placeholders)) or "none"
                raise UsageError(
                    f"modality {attachment.modality!r} is not enabled in this model "
                    f"(enabled: {enabled}){did_you_mean(attachment.modality, self.placeholders)}"
                )
            if attachment.num_tokens < 1:
                raise UsageError(f"each {attachment.modality} input must make at least 1 token")
            if self.fusion == "sum" and attachment.num_tokens != 1:
                raise UsageError(
                    f"fusion 'sum' needs 1 token per input but the {attachment.modality} projector makes "
                    f"{attachment.num_tokens}; use fusion 'spans' or a 1-token projector such as linear"
                )
        return inputs

    def _place(self, content: str, attachments: Sequence[Attachment], first: int) -> str:
        """``content`` with every input's placeholder replaced by its slot marker (or removed)."""
        modality_of = {text: modality for modality, text in self.placeholders.items()}
        queues: dict[str, list[int]] = {}
        for number, attachment in enumerate(attachments, first):
            queues.setdefault(attachment.modality, []).append(number)
        counts: dict[str, int] = {}
        for match in self._pattern.finditer(content):
            counts[modality_of[match.group()]] = counts.get(modality_of[match.group()], 0) + 1
        for modality, count in counts.items():
            given = len(queues.get(modality, []))
            if count != given:
                raise UsageError(
                    f"the message has {_plural(count, self.placeholders[modality] + ' placeholder')} but "
                    f"{_plural(given, modality + ' input')} {'was' if given == 1 else 'were'} given; "
                    "put one placeholder per input, or none to place the inputs at the start"
                )

        def marker(number: int) -> str:
            # In sum mode only the conversation's first input keeps a place; it receives the sum.
            return f"{_BEGIN}s{number}{_END}" if self.fusion == "spans" or number == 0 else ""

        def replace(match: re.Match[str]) -> str:
            return marker(queues[modality_of[match.group()]].pop(0))

        body = self._pattern.sub(replace, content)
        unplaced = sorted(number for numbers in queues.values() for number in numbers)
        prefixed = [number for number in unplaced if marker(number)]
        if not prefixed:
            return body
        # The text starts on its own line unless the last span's close already ends in whitespace.
        close = self.span(attachments[prefixed[-1] - first].modality)[1]
        return "".join(map(marker, prefixed)) + ("" if close[-1:].isspace() else "\n") + body

    def _tokenize(
        self,
        text: str,
        slots: Mapping[int, tuple[str, int | tuple[int, ...], int]],
        roles: Sequence[str],
        targets: bool,
    ) -> ProcessedPrompt:
        tokenizer = self.tokenizer
        ids: list[int] = []
        if self.template.add_bos and tokenizer.bos_token_id is not None:
            ids.append(tokenizer.bos_token_id)
        is_target = [False] * len(ids)
        placed: list[Slot] = []
        shown: list[str] = []
        pending = ""

        def flush(target: bool) -> None:
            nonlocal pending
            if pending:
                piece = tokenizer.tokenize(pending)
                ids.extend(piece)
                is_target.extend([target] * len(piece))
                shown.append(pending)
            pending = ""

        pieces = _MARKER.split(text)
        pending = pieces[0]
        for kind, number_text, following in zip(pieces[1::3], pieces[2::3], pieces[3::3], strict=True):
            number = int(number_text)
            if kind == "s":
                modality, input_index, length = slots[number]
                open_text, close_text = self.span(modality)
                pending += open_text
                flush(False)
                placed.append(Slot(modality, input_index, len(ids), length))
                ids.extend([tokenizer.pad_token_id] * length)
                is_target.extend([False] * length)
                shown.append(f"[{length} x {modality}]")
                pending = close_text + following
            elif kind == "b" and roles[number] == "assistant":
                # The generation prompt ends before the space that follows "Assistant:", so the
                # space belongs to the reply's first token ("ĠIt"), which must be trained.
                lead = pending[len(pending.rstrip(" ")) :]
                pending = pending[: len(pending) - len(lead)]
                flush(False)
                pending = lead + following
            elif kind == "e" and roles[number] == "assistant":
                # The end-of-turn text through the first stop string is trained too, so the model
                # learns to stop.
                hits = [(following.find(s), s) for s in self.stop if s and s in following]
                end = min(hits)[0] + len(min(hits)[1]) if hits else 0
                pending += following[:end]
                flush(True)
                if not hits and tokenizer.eos_token_id is not None:
                    ids.append(tokenizer.eos_token_id)
                    is_target.append(True)
                pending = following[end:]
            else:
                pending += following
        flush(False)
        return ProcessedPrompt(ids, placed, "".join(shown), is_target if targets else None)
