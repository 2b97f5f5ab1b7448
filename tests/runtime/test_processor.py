"""The processor: tagged spans, placeholder rules and errors, PandaGPT's summed token, targets."""

from __future__ import annotations

import pytest

from anymodal import Message, TemplateSpec, UsageError
from anymodal.runtime.processor import Attachment, PromptProcessor, Slot, Turn
from anymodal.runtime.templates import TEMPLATES

TEMPLATE = {spec.name: spec for spec in TEMPLATES}
PLACEHOLDERS = {"image": "<image>", "audio": "<audio>"}
PAD, BOS = 0, 1
SLOT = "□"  # how the fake tokenizer decodes the pad id


class CharTokenizer:
    """One id per character (ord + 2), remembering every text it was asked to tokenize."""

    bos_token_id = BOS
    eos_token_id: int | None = None
    pad_token_id = PAD

    def __init__(self) -> None:
        self.calls: list[str] = []

    def tokenize(self, text: str) -> list[int]:
        self.calls.append(text)
        return [ord(c) + 2 for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join({PAD: SLOT, BOS: "^"}.get(i, chr(i - 2) if i > 1 else "?") for i in ids)


def processor(template: str = "plain", **kwargs) -> tuple[PromptProcessor, CharTokenizer]:
    tokenizer = CharTokenizer()
    return PromptProcessor(TEMPLATE[template], tokenizer, PLACEHOLDERS, **kwargs), tokenizer


IMAGE3, AUDIO2 = Attachment("image", 3), Attachment("audio", 2)


def test_every_input_is_its_own_tagged_span():
    proc, tok = processor()
    turn = Turn(Message("user", "Look <image> and hear <audio> now"), (IMAGE3, AUDIO2))
    out = proc.process([turn])
    head = "User: Look <image>"
    middle = "</image> and hear <audio>"
    assert tok.decode(out.input_ids) == f"^{head}{SLOT * 3}{middle}{SLOT * 2}</audio> now\nAssistant:"
    assert out.slots == [
        Slot("image", 0, 1 + len(head), 3),
        Slot("audio", 1, 1 + len(head) + 3 + len(middle), 2),
    ]
    assert tok.calls == [head, middle, "</audio> now\nAssistant:"]
    assert out.text == f"{head}[3 x image]{middle}[2 x audio]</audio> now\nAssistant:"


def test_placeholders_follow_text_order_and_inputs_keep_their_numbers():
    proc, tok = processor()
    inputs = (Attachment("image", 1), Attachment("audio", 1), Attachment("image", 2))
    out = proc.process([Turn(Message("user", "<audio> first, then <image> and <image>"), inputs)])
    assert [(s.modality, s.input_index, s.length) for s in out.slots] == [
        ("audio", 1, 1),
        ("image", 0, 1),
        ("image", 2, 2),
    ]
    text = tok.decode(out.input_ids)
    expected = f"^User: <audio>{SLOT}</audio> first, then <image>{SLOT}</image> and <image>{SLOT * 2}</image>"
    assert text == expected + "\nAssistant:"


def test_inputs_without_placeholders_go_first_on_their_own_line():
    proc, tok = processor()
    out = proc.process([Turn(Message("user", "hello"), (IMAGE3, AUDIO2))])
    assert (
        tok.decode(out.input_ids)
        == f"^User: <image>{SLOT * 3}</image><audio>{SLOT * 2}</audio>\nhello\nAssistant:"
    )


def test_inputs_across_turns_are_numbered_in_conversation_order():
    proc, _ = processor("chatml")
    conversation = [
        Turn(Message("user", "<image> what?"), (IMAGE3,)),
        Message("assistant", "a cat"),
        Turn(Message("user", "and <audio>?"), (AUDIO2,)),
    ]
    out = proc.process(conversation)
    assert [(s.modality, s.input_index, s.length) for s in out.slots] == [("image", 0, 3), ("audio", 1, 2)]
    assert out.slots[1].start > out.slots[0].start + 3
    assert BOS not in out.input_ids  # chatml has no BOS
    assert [out.input_ids[s.start : s.start + s.length] for s in out.slots] == [[PAD] * 3, [PAD] * 2]


def test_placeholders_outside_user_messages_are_plain_text():
    proc, tok = processor()
    out = proc.process([Message("assistant", "I saw <image>"), Turn(Message("user", "ok"), (IMAGE3,))])
    assert "I saw <image>\n" in tok.decode(out.input_ids) and len(out.slots) == 1


@pytest.mark.parametrize(
    ("content", "inputs", "message"),
    [
        ("<image> <image>", (IMAGE3,), "the message has 2 <image> placeholders but 1 image input was given"),
        ("<image>", (IMAGE3, IMAGE3), "the message has 1 <image> placeholder but 2 image inputs were given"),
        ("<audio> hi", (), "the message has 1 <audio> placeholder but no audio inputs were given"),
        ("hi", (Attachment("vidoe", 1),), "modality 'vidoe' is not enabled in this model"),
        ("hi", (Attachment("image", 0),), "each image input must make at least 1 token"),
    ],
)
def test_placeholder_mismatches_are_usage_errors(content, inputs, message):
    proc, _ = processor()
    with pytest.raises(UsageError, match=message):
        proc.process([Turn(Message("user", content), inputs)])


def test_inputs_only_on_user_messages():
    proc, _ = processor()
    with pytest.raises(UsageError, match="not to a assistant one"):
        proc.process([Turn(Message("assistant", "x"), (IMAGE3,))])


def test_sum_mode_makes_one_slot_for_all_inputs():
    proc, tok = processor(fusion="sum")
    inputs = (Attachment("image", 1), Attachment("audio", 1))
    out = proc.process([Turn(Message("user", "see <audio> and <image>"), inputs)])
    # The slot sits at the first input (the image), tagged with its modality; "<audio>" is removed.
    assert tok.decode(out.input_ids) == f"^User: see  and <image>{SLOT}</image>\nAssistant:"
    assert out.slots == [Slot("image", (0, 1), len("^User: see  and <image>"), 1)]
    assert out.slots[0].input_indices == (0, 1)


def test_sum_mode_refuses_multi_token_inputs():
    proc, _ = processor(fusion="sum")
    with pytest.raises(
        UsageError, match="fusion 'sum' needs 1 token per input but the image projector makes 3"
    ):
        proc.process([Turn(Message("user", "x"), (IMAGE3,))])


def panda(tok: CharTokenizer, prompt: str) -> list[int]:
    head = tok.tokenize("### Human: <Img>")
    return [BOS, *head, PAD, *tok.tokenize("</Img> " + prompt + "\n### Assistant:")]


def test_pandagpt_single_turn_ids_are_exact():
    proc, tok = processor("pandagpt", fusion="sum")
    inputs = (Attachment("image", 1), Attachment("audio", 1))
    out = proc.process([Turn(Message("user", "What is happening?"), inputs)])
    assert tok.calls == ["### Human: <Img>", "</Img> What is happening?\n### Assistant:"]
    assert out.input_ids == panda(CharTokenizer(), "What is happening?")
    assert out.slots == [Slot("image", (0, 1), 1 + len("### Human: <Img>"), 1)]
    assert proc.stop == ("###",)


def test_pandagpt_multi_turn_ids_are_exact():
    proc, _ = processor("pandagpt", fusion="sum")
    conversation = [
        Turn(Message("user", "q0"), (Attachment("image", 1),)),
        Message("assistant", "a0"),
        Message("user", "q1"),
        Message("assistant", "a1"),
        Message("user", "x"),
    ]
    prompt = "q0\n### Assistant: a0\n###" + " Human: q1\n### Assistant: a1\n###" + " Human: x"
    assert proc.process(conversation).input_ids == panda(CharTokenizer(), prompt)


def test_pandagpt_without_media_has_no_slot():
    proc, tok = processor("pandagpt", fusion="sum")
    out = proc.process([Message("user", "hi")])
    assert out.input_ids == [BOS, *tok.tokenize("### Human: hi\n### Assistant:")] and out.slots == []


def test_template_span_overrides_the_configured_span():
    proc, _ = processor("pandagpt", span_open="[{name}", span_close="]")
    assert proc.span("audio") == ("<Img>", "</Img> ")
    assert processor(span_open="[{name}", span_close="]")[0].span("audio") == ("[audio", "]")


def test_a_template_that_drops_an_input_is_caught():
    def last_only(messages, add_generation_prompt):
        return messages[-1].content

    proc = PromptProcessor(TemplateSpec("last", last_only), CharTokenizer(), PLACEHOLDERS)
    with pytest.raises(UsageError, match="template 'last' dropped or repeated an input"):
        proc.process([Turn(Message("user", "<image>"), (IMAGE3,)), Message("user", "bye")])


def test_targets_cover_assistant_text_through_the_stop_string():
    proc, tok = processor("vicuna", extra_stop=("</s>", "<eos>"))
    assert proc.stop == ("</s>", "<eos>")
    conversation = [
        Turn(Message("user", "<image>q0"), (Attachment("image", 2),)),
        Message("assistant", "a0"),
        Message("user", "q1"),
        Message("assistant", "a1"),
    ]
    out = proc.process(conversation, add_generation_prompt=False, targets=True)
    assert out.targets is not None and len(out.targets) == len(out.input_ids)
    trained = tok.decode([i for i, t in zip(out.input_ids, out.targets, strict=True) if t])
    # The space after "ASSISTANT:" starts the reply: generation prompts end at the colon.
    assert trained == " a0</s> a1</s>"
    untrained = tok.decode([i for i, t in zip(out.input_ids, out.targets, strict=True) if not t])
    assert untrained.endswith(f"USER: <image>{SLOT * 2}</image>q0 ASSISTANT:USER: q1 ASSISTANT:")
    assert proc.process(conversation, add_generation_prompt=False).targets is None


def test_pandagpt_targets_match_its_training_segments():
    proc, tok = processor("pandagpt", fusion="sum")
    conversation = [Turn(Message("user", "q"), (Attachment("image", 1),)), Message("assistant", "a")]
    out = proc.process(conversation, add_generation_prompt=False, targets=True)
    assert out.targets is not None
    assert tok.decode([i for i, t in zip(out.input_ids, out.targets, strict=True) if t]) == " a\n###"


def test_a_reply_without_a_following_stop_string_is_trained_to_end_with_eos():
    proc, tok = processor("plain")
    tok.eos_token_id = EOS = 5
    conversation = [Message("user", "q0"), Message("assistant", "a0"), Message("user", "q1")]
    conversation += [Message("assistant", "a1")]
    out = proc.process(conversation, add_generation_prompt=False, targets=True)
    assert out.targets is not None
    trained = [i for i, t in zip(out.input_ids, out.targets, strict=True) if t]
    # The first reply is followed by "\nUser:" (the stop string); the last by nothing, so EOS.
    assert tok.decode(trained[:-1]) == " a0\nUser: a1" and trained[-1] == EOS
    # EOS sits right after the reply; the template's trailing newline follows it, untrained.
    assert out.input_ids[-2:] == [EOS, ord("\n") + 2] and out.targets[-2:] == [True, False]
