"""Conversation templates: the named ones, and which one a config's ``template`` key means.

:func:`resolve_template` picks: ``auto`` is the tokenizer's own chat template when it has one
(:func:`tokenizer_template`), else the named ``fallback_template``; any other name is looked up.

Every template renders a list of :class:`anymodal.Message` into text and leaves modality
placeholders (and whatever else is in the contents) untouched; :mod:`anymodal.runtime.processor` expands
them afterwards. A system message may come only first. Exact formats, ``q``/``a`` being user and
assistant contents, ``x`` the last user message, ``S`` the system text:

``plain`` (anymodal's own; add_bos, stop ``"\\nUser:"``)::

    S\\n\\nUser: q\\nAssistant: a\\nUser: x\\nAssistant:

``pandagpt`` (PandaGPT's exact strings; add_bos, spans ``<Img>`` / ``"</Img> "``)::

    ### Human: q\\n### Assistant: a\\n### Human: x\\n### Assistant:

  A reply ends as PandaGPT's (``openllama.py``, ``generate``): when the id of the vocabulary entry
  ``"##"`` is generated (LLaMA's 2277; the model ends a turn with ``"\\n###"``, which LLaMA spells
  ``\\n`` ``##`` ``#``), at EOS, or after max_new_tokens; the reply is every generated id less the
  last two, whatever ended it (``decode(ids[:-2])``, meant to drop that ``\\n`` and ``##``), and
  that text is what the history writes back, as ``web_demo.py`` does: ``{q}\\n### Assistant: {a}\\n###`` then
  `` Human: ...``. Its stop string ``"###"`` does not end generation; it only marks the
  end-of-turn text that training targets include (``build_one_instance``: ``a + "\\n###"``).

  PandaGPT has no system prompt, so a system message is an error rather than silently dropped. A
  conversation without inputs renders the same way (``### Human: x\\n### Assistant:``); with an
  input, the processor puts it right before the first user text, giving PandaGPT's
  ``### Human: <Img>[input]</Img> x\\n### Assistant:``.

``vicuna`` (Vicuna v1.1 as in FastChat; add_bos, stop ``"</s>"``; default system below)::

    S USER: q ASSISTANT: a</s>USER: x ASSISTANT:

``chatml`` (no BOS, stop ``"<|im_end|>"``, no default system)::

    <|im_start|>system\\nS<|im_end|>\\n<|im_start|>user\\nq<|im_end|>\\n<|im_start|>assistant\\na<|im_end|>\\n
    <|im_start|>user\\nx<|im_end|>\\n<|im_start|>assistant\\n

With ``add_generation_prompt=False`` the text ends after the last message (for training).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from anymodal.contract.errors import UsageError
from anymodal.contract.specs import Message, TemplateSpec
from anymodal.contract.wording import did_you_mean

TOKENIZER_TEMPLATE = "tokenizer"

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def split_system(messages: Sequence[Message], template: str) -> tuple[str | None, list[Message]]:
    """The system text (or None) and the other messages; a system message anywhere but first fails."""
    system = messages[0].content if messages and messages[0].role == "system" else None
    rest = list(messages[1:] if system is not None else messages)
    for message in rest:
        if message.role == "system":
            raise UsageError(f"template {template!r}: a system message may only be the first message")
        if message.role not in ("user", "assistant"):
            raise UsageError(f"template {template!r}: unknown role {message.role!r}; use user or assistant")
    return system, rest


def render_plain(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    system, rest = split_system(messages, "plain")
    parts = [f"{system}\n\n"] if system else []
    for message in rest:
        speaker = "User" if message.role == "user" else "Assistant"
        parts.append(f"{speaker}: {message.content}\n")
    if add_generation_prompt:
        parts.append("Assistant:")
    return "".join(parts)


def render_pandagpt(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    system, rest = split_system(messages, "pandagpt")
    if system is not None:
        raise UsageError(
            "template 'pandagpt' has no system prompt; unset system_prompt or choose another template"
        )
    # PandaGPT (web_demo.py) opens with "###" once, then every user turn is " Human: q" and every
    # assistant turn "\n### Assistant: a\n###", so turns after the first start " Human:".
    parts = ["###"]
    for message in rest:
        if message.role == "user":
            parts.append(f" Human: {message.content}")
        else:
            parts.append(f"\n### Assistant: {message.content}\n###")
    if add_generation_prompt:
        parts.append("\n### Assistant:")
    return "".join(parts)


def render_vicuna(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    system, rest = split_system(messages, "vicuna")
    parts = [(system if system is not None else VICUNA_SYSTEM) + " "]
    for message in rest:
        if message.role == "user":
            parts.append(f"USER: {message.content} ")
        else:
            parts.append(f"ASSISTANT: {message.content}</s>")
    if add_generation_prompt:
        parts.append("ASSISTANT:")
    return "".join(parts)


def render_chatml(messages: Sequence[Message], add_generation_prompt: bool) -> str:
    split_system(messages, "chatml")  # only for its checks: chatml writes the system turn as any other
    parts = [f"<|im_start|>{message.role}\n{message.content}<|im_end|>\n" for message in messages]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


TEMPLATES: list[TemplateSpec] = [
    TemplateSpec(
        name="plain",
        render=render_plain,
        add_bos=True,
        stop=("\nUser:",),
        description="User: ... / Assistant: ... lines; the fallback for LLMs without a chat template",
    ),
    TemplateSpec(
        name="pandagpt",
        render=render_pandagpt,
        add_bos=True,
        stop=("###",),
        span=("<Img>", "</Img> "),
        description="PandaGPT's exact ### Human: / ### Assistant: prompt (Vicuna v0)",
        # PandaGPT's StoppingCriteriaSub(stops=[2277]) and decode(output_ids[:-2]).
        stop_tokens=("##",),
        stop_on_text=False,
        trim_tokens=2,
    ),
    TemplateSpec(
        name="vicuna",
        render=render_vicuna,
        add_bos=True,
        stop=("</s>",),
        description="Vicuna v1.1 (FastChat): system, then USER: ... ASSISTANT: ...</s>",
    ),
    TemplateSpec(
        name="chatml",
        render=render_chatml,
        add_bos=False,
        stop=("<|im_end|>",),
        description="ChatML: <|im_start|>role ... <|im_end|>",
    ),
]


def tokenizer_template(render: Callable[[Sequence[Message], bool], str | None]) -> TemplateSpec | None:
    """The tokenizer's chat template as a template, or None when it has none.

    ``render`` is usually ``bridge.chat_template_render``. No BOS is added (such templates write
    their own special tokens as text) and there are no stop strings (the bridge stops at EOS).
    """
    if render([Message("user", "hi")], True) is None:
        return None

    def render_text(messages: Sequence[Message], add_generation_prompt: bool) -> str:
        text = render(messages, add_generation_prompt)
        if text is None:
            raise UsageError("the tokenizer's chat template rendered nothing; set template to a named one")
        return text

    return TemplateSpec(
        name=TOKENIZER_TEMPLATE,
        render=render_text,
        add_bos=False,
        stop=(),
        description="the tokenizer's own chat template",
    )


def resolve_template(
    name: str,
    templates: Mapping[str, TemplateSpec],
    *,
    fallback: str = "plain",
    tokenizer: TemplateSpec | None = None,
) -> TemplateSpec:
    """The template config ``template: name`` means.

    "auto": ``tokenizer`` (from :func:`tokenizer_template`) when the tokenizer has a chat template,
    else the named ``fallback``. "tokenizer": the tokenizer's template, or an error. Other names are
    looked up in ``templates``.
    """

    def lookup(wanted: str, key: str) -> TemplateSpec:
        if wanted in templates:
            return templates[wanted]
        choices = ["auto", TOKENIZER_TEMPLATE, *sorted(templates)]
        raise UsageError(
            f"unknown template {wanted!r} in {key}{did_you_mean(wanted, choices)}",
            hint=f"known templates: {', '.join(choices)}",
        )

    if name == "auto":
        return tokenizer if tokenizer is not None else lookup(fallback, "model.fallback_template")
    if name == TOKENIZER_TEMPLATE:
        if tokenizer is None:
            raise UsageError(
                "template 'tokenizer' was asked for but this LLM's tokenizer has no chat template",
                hint=f"set model.template to one of: {', '.join(sorted(templates))}",
            )
        return tokenizer
    return lookup(name, "model.template")
