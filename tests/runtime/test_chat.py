"""Multi-turn chat: history, inputs encoded once per conversation, failures that lose nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anymodal.config import load_config
from anymodal.contract.errors import InputError, UsageError
from anymodal.contract.registry import load_registry
from anymodal.runtime.chat import ChatSession
from anymodal.testing import save_scripted_llm, toy

REPLY = "It hums softly."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("chat-model")
    save_scripted_llm(directory, REPLY)
    return directory


@pytest.fixture
def session(model_dir, tmp_path) -> ChatSession:
    registry = load_registry(plugins=[toy])
    config = tmp_path / "chat.yaml"
    config.write_text(
        f"model:\n  llm: {{path: {model_dir}}}\n  template: plain\n  modalities: {{toy: {{}}}}\n"
        "generation: {max_new_tokens: 16}\n"
    )
    return ChatSession.from_config(load_config(config, registry=registry).config, registry)


def npy(path: Path, value: float) -> Path:
    np.save(path, np.full((4, 8), value, dtype=np.float32))
    return path


def test_each_input_is_encoded_once_per_conversation(session, tmp_path):
    first = npy(tmp_path / "first.npy", 1.0)
    session.attach("toy", first)
    assert "".join(session.ask("what is it?")) == REPLY
    assert session.encoded_count == 1
    assert "".join(session.ask("and now?")) == REPLY  # the history still shows the first input
    assert session.encoded_count == 1
    session.attach("toy", npy(tmp_path / "same-content.npy", 1.0))  # same bytes, other name
    session.attach("toy", npy(tmp_path / "second.npy", 2.0))
    "".join(session.ask("compare them"))
    assert session.encoded_count == 2
    assert [len(turn.inputs) for turn in session.history] == [1, 0, 2]


def test_the_prompt_carries_the_whole_history_with_its_spans(session, tmp_path):
    session.attach("toy", npy(tmp_path / "a.npy", 1.0))
    "".join(session.ask("first question"))
    prompt = session.processor.process(session._conversation(_turn("second question")))
    assert prompt.text.count("<toy>") == 1 and prompt.text.count(REPLY) == 1
    assert prompt.text.index("first question") < prompt.text.index(REPLY) < prompt.text.index("second")
    assert prompt.text.endswith("User: second question\nAssistant:")
    [slot] = prompt.slots
    assert slot.length == 1 and slot.input_indices == (0,)


def _turn(text):
    from anymodal.runtime.chat import ChatTurn

    return ChatTurn(text, [])


def test_a_bad_file_or_prompt_loses_nothing(session, tmp_path):
    session.attach("toy", npy(tmp_path / "a.npy", 1.0))
    "".join(session.ask("first"))
    with pytest.raises(InputError):
        session.attach("toy", tmp_path / "missing.npy")
    good = session.attach("toy", npy(tmp_path / "b.npy", 3.0))
    with pytest.raises(UsageError, match="2 <toy> placeholders but 1 toy input"):
        session.ask("<toy> versus <toy>?")
    assert session.pending == [good] and len(session.history) == 1  # nothing lost
    assert "".join(session.ask("<toy> alone then")) == REPLY
    assert len(session.history) == 2 and session.pending == []


def test_a_stopped_reply_is_kept_and_reset_clears(session):
    pieces = session.ask("hello")
    first = next(pieces)
    pieces.close()  # what Ctrl-C does
    assert session.history[-1].reply == first and session.history[-1].interrupted
    session.reset()
    assert session.history == [] and session.pending == []


def test_the_generation_settings_come_from_the_template(session, model_dir, tmp_path):
    plain = session.generation  # text stops, the ending id dropped
    assert (plain.stop, plain.stop_token_ids, plain.trim_tokens) == (("\nUser:",), (), None)
    registry = load_registry(plugins=[toy])
    config = tmp_path / "panda.yaml"
    config.write_text(
        f"model:\n  llm: {{path: {model_dir}}}\n  template: pandagpt\n  fusion: sum\n"
        "  modalities: {toy: {}}\ngeneration: {max_new_tokens: 16, stop: [END]}\n"
    )
    panda = ChatSession.from_config(load_config(config, registry=registry).config, registry)
    settings = panda.generation
    # Stopped on the id of "##" and trimmed of two ids as PandaGPT; "###" does not stop it; a stop
    # string the config asks for still does.
    vocabulary = panda.model.bridge.tokenizer.get_vocab()
    assert (settings.stop, settings.stop_token_ids, settings.trim_tokens) == (
        ("END",),
        (vocabulary["##"],),
        2,
    )
    assert panda.processor.stop == ("###", "END")  # what training still ends a turn with


def test_a_template_stopping_on_a_token_the_vocabulary_lacks_is_one_error(session):
    from dataclasses import replace

    from anymodal.runtime.templates import TEMPLATES

    panda = next(spec for spec in TEMPLATES if spec.name == "pandagpt")
    processor = replace(session.processor, template=replace(panda, stop_tokens=("no such token",)))
    with pytest.raises(UsageError, match="stops on the token 'no such token', which this LLM's vocabulary"):
        _ = processor.stop_token_ids
