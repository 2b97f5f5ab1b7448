"""Named templates render exact strings; template resolution and its errors."""

from __future__ import annotations

import pytest

from anymodal import Message, UsageError
from anymodal.runtime.templates import TEMPLATES, resolve_template, tokenizer_template

BY_NAME = {spec.name: spec for spec in TEMPLATES}

TWO_TURNS = [
    Message("user", "q0"),
    Message("assistant", "a0"),
    Message("user", "q1"),
]


def render(name: str, messages: list[Message], add_generation_prompt: bool = True) -> str:
    return BY_NAME[name].render(messages, add_generation_prompt)


def test_registered_names_and_flags():
    assert sorted(BY_NAME) == ["chatml", "pandagpt", "plain", "vicuna"]
    panda = BY_NAME["pandagpt"]
    assert (panda.span, panda.stop, panda.add_bos) == (("<Img>", "</Img> "), ("###",), True)
    assert (BY_NAME["chatml"].add_bos, BY_NAME["chatml"].stop) == (False, ("<|im_end|>",))
    assert BY_NAME["vicuna"].stop == ("</s>",)


def test_how_replies_end_pandagpt_on_token_ids_the_others_on_text():
    panda = BY_NAME["pandagpt"]
    # PandaGPT's StoppingCriteriaSub(stops=[2277 = "##"]) and decode(output_ids[:-2]); its "###"
    # stays the end-of-turn text for training only.
    assert (panda.stop_tokens, panda.stop_on_text, panda.trim_tokens) == (("##",), False, 2)
    for name in ("plain", "vicuna", "chatml"):
        spec = BY_NAME[name]
        assert (spec.stop_tokens, spec.stop_on_text, spec.trim_tokens) == ((), True, None)
    spec = tokenizer_template(fake_chat_template)
    assert spec is not None and (spec.stop_tokens, spec.stop_on_text, spec.trim_tokens) == ((), True, None)


def test_pandagpt_history_after_a_trimmed_reply_is_the_web_demos():
    # web_demo.py keeps decode(ids[:-2]), "A dog." with no newline, and writes "{a}\n###".
    messages = [Message("user", "q0"), Message("assistant", "A dog."), Message("user", "q1")]
    assert (
        render("pandagpt", messages) == "### Human: q0\n### Assistant: A dog.\n### Human: q1\n### Assistant:"
    )


def test_pandagpt_single_turn_with_placeholder():
    assert render("pandagpt", [Message("user", "<image>What is this?")]) == (
        "### Human: <image>What is this?\n### Assistant:"
    )


def test_pandagpt_without_media():
    assert render("pandagpt", [Message("user", "hi")]) == "### Human: hi\n### Assistant:"


def test_pandagpt_multi_turn_is_web_demo_exact():
    messages = [
        Message("user", "<image>q0"),
        Message("assistant", "a0"),
        Message("user", "q1"),
        Message("assistant", "a1"),
        Message("user", "x"),
    ]
    expected = (
        "### Human: <image>"
        + "q0\n### Assistant: a0\n###"
        + " Human: q1\n### Assistant: a1\n###"
        + " Human: x"
        + "\n### Assistant:"
    )
    assert render("pandagpt", messages) == expected


def test_pandagpt_training_text_ends_with_separator():
    messages = [Message("user", "q"), Message("assistant", "a")]
    assert render("pandagpt", messages, add_generation_prompt=False) == "### Human: q\n### Assistant: a\n###"


def test_pandagpt_refuses_a_system_prompt():
    with pytest.raises(UsageError, match="no system prompt"):
        render("pandagpt", [Message("system", "be nice"), Message("user", "hi")])


def test_vicuna_two_turns_exact():
    system = (
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    )
    assert render("vicuna", TWO_TURNS) == f"{system} USER: q0 ASSISTANT: a0</s>USER: q1 ASSISTANT:"
    custom = render("vicuna", [Message("system", "S"), *TWO_TURNS])
    assert custom == "S USER: q0 ASSISTANT: a0</s>USER: q1 ASSISTANT:"


def test_chatml_two_turns_exact():
    text = render("chatml", [Message("system", "S"), *TWO_TURNS])
    assert text == (
        "<|im_start|>system\nS<|im_end|>\n"
        "<|im_start|>user\nq0<|im_end|>\n"
        "<|im_start|>assistant\na0<|im_end|>\n"
        "<|im_start|>user\nq1<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_plain_two_turns_exact():
    assert render("plain", [Message("system", "S"), *TWO_TURNS]) == (
        "S\n\nUser: q0\nAssistant: a0\nUser: q1\nAssistant:"
    )
    assert render("plain", TWO_TURNS, add_generation_prompt=False) == "User: q0\nAssistant: a0\nUser: q1\n"


@pytest.mark.parametrize("name", ["plain", "pandagpt", "vicuna", "chatml"])
def test_system_message_after_the_first_is_refused(name):
    with pytest.raises(UsageError, match="only be the first message"):
        render(name, [Message("user", "hi"), Message("system", "late")])


def fake_chat_template(messages, add_generation_prompt):
    return "".join(f"[{m.role}]{m.content}" for m in messages) + (
        "[assistant]" if add_generation_prompt else ""
    )


def test_auto_prefers_the_tokenizer_template():
    spec = tokenizer_template(fake_chat_template)
    assert spec is not None and (spec.add_bos, spec.stop) == (False, ())
    chosen = resolve_template("auto", BY_NAME, fallback="vicuna", tokenizer=spec)
    assert chosen.render([Message("user", "x")], True) == "[user]x[assistant]"


def test_auto_falls_back_without_a_chat_template():
    assert tokenizer_template(lambda messages, add: None) is None
    assert resolve_template("auto", BY_NAME, fallback="vicuna", tokenizer=None) is BY_NAME["vicuna"]
    assert (
        resolve_template("chatml", BY_NAME, tokenizer=tokenizer_template(fake_chat_template)).name == "chatml"
    )


def test_unknown_template_suggests_the_closest():
    with pytest.raises(
        UsageError, match=r"unknown template 'vicuan' in model.template \(did you mean 'vicuna'\?\)"
    ):
        resolve_template("vicuan", BY_NAME)
    with pytest.raises(UsageError, match=r"model\.fallback_template"):
        resolve_template("auto", BY_NAME, fallback="nope")


def test_tokenizer_template_asked_for_but_missing():
    with pytest.raises(UsageError, match="has no chat template"):
        resolve_template("tokenizer", BY_NAME, tokenizer=None)
