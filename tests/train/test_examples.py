"""Tokenisation for training: loss on assistant tokens only, and truncation that keeps spans whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from anymodal.config import load_config
from anymodal.contract.registry import Registry
from anymodal.contract.specs import Message
from anymodal.runtime.model import AnyModalModel
from anymodal.runtime.processor import PromptProcessor
from anymodal.train.data import MediaRef, Record
from anymodal.train.examples import IGNORE_INDEX, Example, Skipped, build_example

TOKENS = 4  # the mlp projector makes one token per toy feature row


@pytest.fixture
def model(tmp_path: Path, tiny_llm: Path, toy_registry: Registry) -> AnyModalModel:
    file = tmp_path / "model.yaml"
    file.write_text(
        f"model:\n  llm: {{path: {tiny_llm}}}\n  template: plain\n"
        "  modalities: {toy: {projector: {name: mlp}}}\n"
    )
    return AnyModalModel.from_config(load_config(file, registry=toy_registry).config.model, toy_registry)


@pytest.fixture
def processor(model: AnyModalModel, toy_registry: Registry) -> PromptProcessor:
    return model.prompt_processor(toy_registry)


def record(tmp_path: Path) -> Record:
    messages = (
        Message("user", "<toy>\nWhat is it?"),
        Message("assistant", "plus"),
        Message("user", "And this one? <toy>"),
        Message("assistant", "Also plus."),
    )
    media = (MediaRef(0, "toy", tmp_path / "a.npy"), MediaRef(2, "toy", tmp_path / "b.npy"))
    return Record("data.jsonl:1", messages, media)


def runs(ids: list[int], labels: list[int], trained: bool) -> list[list[int]]:
    """Maximal runs of ids whose label is (or is not) ignored."""
    out: list[list[int]] = []
    previous = None
    for token, label in zip(ids, labels, strict=True):
        is_trained = label != IGNORE_INDEX
        if is_trained == trained:
            if previous != trained:
                out.append([])
            out[-1].append(token)
        previous = is_trained
    return out


def test_loss_is_on_assistant_tokens_only(model, processor, tmp_path):
    example = build_example(record(tmp_path), processor, {"toy": TOKENS}, max_length=1024)
    assert isinstance(example, Example)
    tokenizer = model.bridge.tokenizer  # type: ignore[attr-defined]

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False).replace("<pad>", "□")

    trained = [decode(run) for run in runs(example.input_ids, example.labels, trained=True)]
    untrained = [decode(run) for run in runs(example.input_ids, example.labels, trained=False)]
    # Each reply is trained through the stop string that ends it ("\nUser:"), the last one through EOS.
    # The space after "Assistant:" belongs to the reply: the generation prompt ends at the colon.
    assert trained == [" plus\nUser:", " Also plus.</s>"]
    assert untrained == [
        "<s>User: <toy>□□□□</toy>\nWhat is it?\nAssistant:",
        " And this one? <toy>□□□□</toy>\nAssistant:",
        "\n",
    ]
    assert [label for label in example.labels if label != IGNORE_INDEX] == [
        token for token, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX
    ]
    assert [(slot.input_indices, slot.length) for slot in example.slots] == [((0,), 4), ((1,), 4)]
    assert example.media == list(record(tmp_path).media)


def test_truncation_never_cuts_through_an_input_span(model, processor, tmp_path):
    full = build_example(record(tmp_path), processor, {"toy": TOKENS}, max_length=1024)
    assert isinstance(full, Example)
    second = full.slots[1]
    # A cut two tokens into the second span moves back to before its opening "<toy>" text.
    cut = build_example(record(tmp_path), processor, {"toy": TOKENS}, max_length=second.start + 2)
    assert isinstance(cut, Example)
    text = model.bridge.tokenizer.decode(cut.input_ids, skip_special_tokens=False)  # type: ignore[attr-defined]
    assert text.endswith("plus\nUser: And this one?")  # the span's "<toy>" went with it
    assert cut.input_ids == full.input_ids[: len(cut.input_ids)]
    assert cut.labels == full.labels[: len(cut.input_ids)]
    assert len(cut.slots) == 1 and cut.media == [full.media[0]]
    # So does a cut inside its closing "</toy>"; a cut after that keeps the span and its input.
    closing = len(processor.tokenizer.tokenize("</toy>"))
    inside = build_example(record(tmp_path), processor, {"toy": TOKENS}, max_length=second.start + 5)
    assert isinstance(inside, Example) and inside.input_ids == cut.input_ids
    after = second.start + TOKENS + closing
    kept = build_example(record(tmp_path), processor, {"toy": TOKENS}, max_length=after)
    assert isinstance(kept, Example) and len(kept.slots) == 2 and len(kept.media) == 2


def test_a_record_with_no_answer_inside_max_length_is_skipped(processor, tmp_path):
    full = build_example(record(tmp_path), processor, {"toy": TOKENS}, max_length=1024)
    assert isinstance(full, Example)
    first_answer = full.labels.index(next(label for label in full.labels if label != IGNORE_INDEX))
    skipped = build_example(record(tmp_path), processor, {"toy": TOKENS}, max_length=first_answer)
    assert skipped == Skipped("data.jsonl:1", f"no answer tokens within the first {first_answer} tokens")


def test_a_system_prompt_is_rendered_untrained(processor, tmp_path):
    example = build_example(record(tmp_path), processor, {"toy": TOKENS}, 1024, system_prompt="Be brief.")
    assert isinstance(example, Example)
    plain = build_example(record(tmp_path), processor, {"toy": TOKENS}, 1024)
    assert isinstance(plain, Example)
    assert example.target_count == plain.target_count
    assert (
        processor.tokenizer.tokenize("Be brief.")
        == example.input_ids[1 : 1 + len(processor.tokenizer.tokenize("Be brief."))]
    )
