"""Records -> training examples: token ids, labels (−100 except on assistant tokens), input slots.

Tokenisation is the chat path's own (:class:`anymodal.runtime.processor.PromptProcessor` with
``targets=True``), so a model trains on exactly the prompts it later sees. Examples longer than
``max_length`` are cut at a token boundary that never falls inside an input's span: when the cut
would split a span, it moves back to just before the span's opening text, and the inputs whose
spans fall outside are dropped with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from anymodal.contract.specs import Message
from anymodal.runtime.processor import Attachment, PromptProcessor, Slot, Turn
from anymodal.train.data import MediaRef, Record

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One tokenised training sample. ``media[i]`` is the input that slots with index ``i`` take."""

    source: str
    input_ids: list[int]
    labels: list[int]
    slots: list[Slot]
    media: list[MediaRef]

    @property
    def target_count(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


@dataclass(frozen=True)
class Skipped:
    """A record that tokenised to nothing trainable (all its answer tokens beyond max_length)."""

    source: str
    detail: str


def build_example(
    record: Record,
    processor: PromptProcessor,
    tokens_per_input: Mapping[str, int],
    max_length: int,
    system_prompt: str | None = None,
) -> Example | Skipped:
    """Tokenise ``record`` per the processor's template and cut it to ``max_length`` tokens."""
    conversation: list[Turn] = []
    if system_prompt and not any(m.role == "system" for m in record.messages):
        conversation.append(Turn(Message("system", system_prompt)))
    for index, message in enumerate(record.messages):
        attached = tuple(
            Attachment(ref.modality, tokens_per_input[ref.modality])
            for ref in record.media
            if ref.message == index
        )
        conversation.append(Turn(message, attached))
    prompt = processor.process(conversation, add_generation_prompt=False, targets=True)
    assert prompt.targets is not None  # asked for with targets=True
    ids = list(prompt.input_ids)
    labels = [i if t else IGNORE_INDEX for i, t in zip(ids, prompt.targets, strict=True)]
    slots, media = list(prompt.slots), list(record.media)
    if len(ids) > max_length:
        cut = span_safe_cut(ids, slots, max_length, processor)
        ids, labels = ids[:cut], labels[:cut]
        slots = [slot for slot in slots if slot.start + slot.length <= cut]
        kept = sorted({i for slot in slots for i in slot.input_indices})
        media = [media[i] for i in kept]
    example = Example(record.source, ids, labels, slots, media)
    if example.target_count == 0:
        return Skipped(record.source, f"no answer tokens within the first {max_length} tokens")
    return example


def span_safe_cut(
    ids: Sequence[int], slots: Sequence[Slot], max_length: int, processor: PromptProcessor
) -> int:
    """The largest cut ``<= max_length`` that leaves every input span whole or entirely dropped."""
    cut = max_length
    for slot in slots:
        opening, closing = (text.strip() for text in processor.span(slot.modality))
        closing_length = len(processor.tokenizer.tokenize(closing)) if closing else 0
        if slot.start < cut < slot.start + slot.length + closing_length:
            cut = min(cut, _opening_start(ids, slot.start, opening, processor.tokenizer.decode))
    return cut


def _opening_start(
    ids: Sequence[int], start: int, opening: str, decode: Callable[[Sequence[int]], str]
) -> int:
    """Where the span's opening text begins before position ``start``. It was tokenised together
    with the text before it, so look back for the fewest tokens that decode to contain it."""
    if opening:
        for back in range(1, min(start, 64) + 1):
            if opening in decode(ids[start - back : start]):
                return start - back
    return start
