"""The built-in tiny LLM (``builtin:tiny-untrained``, the schema's default ``model.llm.path``):
a real byte-level BPE tokenizer trained with the ``tokenizers`` library and a real
``LlamaForCausalLM`` with random weights, both saved in the exact format ``from_pretrained`` reads,
built locally in milliseconds with no downloads. :mod:`anymodal.testing` offers the same builders
to tests. torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

#: The tokenizer's special tokens, in id order: ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, ``<pad>`` = 3.
UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, PAD_TOKEN = "<unk>", "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = (UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)
UNK_ID, BOS_ID, EOS_ID, PAD_ID = range(4)

#: A ChatML chat template (the form Qwen and many others ship), for tests of tokenizer-provided
#: templates. ``<|im_start|>`` / ``<|im_end|>`` are plain text to the tiny tokenizer.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


# Enough varied English for a 512-token BPE, with the words prompts and templates use, so that
# "### Human:", "<image>" or "colour" become a few tokens rather than a run of single bytes.
DEFAULT_CORPUS: tuple[str, ...] = (
    "### Human: What is in this image?",
    "### Assistant: The image shows a red circle on a white background.",
    "### Human: Describe the audio clip.",
    "### Assistant: The audio is a dog barking twice, then a car passing by.",
    "Human: Which colour is the largest shape?",
    "Assistant: The largest shape is a blue square in the top left corner.",
    "<image> <audio> <video> <depth> <thermal> <imu> <speech>",
    "</image> </audio> </video> </depth> </thermal> </imu> </speech>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>",
    "<|im_start|>user\nWhat do you hear?<|im_end|>\n<|im_start|>assistant\n",
    "A small green triangle sits next to a yellow star.",
    "The colour of the sky changes from orange to purple at sunset.",
    "She listened to the recording and counted three different voices.",
    "Every shape in the picture has a thin black outline.",
    "The video shows a person walking through a crowded market.",
    "In the depth map, nearer objects appear brighter than distant ones.",
    "A thermal camera sees the warm engine glowing against the cold road.",
    "The accelerometer readings suggest the person started running.",
    "Please answer in one short sentence.",
    "There are two cats, one sleeping and one chasing a ball of string.",
    'He said: "I can\'t see anything unusual here."',
    "Numbers like 1, 2, 3, 10, 42 and 2024 appear in text too.",
    "What is happening in this scene? Explain step by step.",
    "The music is slow and quiet, played on a piano with soft strings.",
    "Rain falls on the window while thunder rolls in the distance.",
    "The speaker sounds calm, and the speech is clear and slow.",
    "Is the circle above or below the square?",
    "The image is too dark to tell which colour the car is.",
    "Shapes: circle, square, triangle, star, hexagon, rectangle.",
    "Colours: red, green, blue, yellow, orange, purple, black, white, grey.",
    "Sounds: bark, siren, laughter, applause, engine, birdsong, footsteps.",
    "The model looked at the image and listened to the audio before it answered.",
    "Summarise the conversation so far, then ask a question.",
    "Tabs\tand  double  spaces, and new\nlines, are text as well.",
    "Thank you! You're welcome; glad I could help.",
    "The quick brown fox jumps over the lazy dog.",
    "How many people are in the photo, and what are they doing?",
    "A bright light flashes, and then the room falls silent.",
    "The user asked about the image; the assistant described the shapes.",
    "Café, naïve, über, 日本語, emoji 🙂: text beyond ASCII is bytes too.",
)


def train_bpe_tokenizer(
    texts: Iterable[str] | None = None,
    vocab_size: int = 512,
    chat_template: str | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` (default: :data:`DEFAULT_CORPUS`).

    Special tokens: ``<unk>`` 0, ``<s>`` (bos) 1, ``</s>`` (eos) 2, ``<pad>`` 3. Byte-level means
    every string encodes and decodes back exactly, spaces, newlines and non-ASCII included. The
    vocabulary can come out smaller than ``vocab_size`` when the corpus runs out of merges; size
    models by ``len(tokenizer)``. Training is deterministic for the same texts.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(DEFAULT_CORPUS if texts is None else texts)
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 byte symbols up front, so any text is covered even if the corpus lacks a byte.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=UNK_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def tiny_llama(
    vocab_size: int,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A ``LlamaForCausalLM`` with random weights, identical for the same arguments and ``seed``.

    Token ids follow :func:`train_bpe_tokenizer` (bos 1, eos 2, pad 3). The global torch RNG is
    left as it was.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    set_special_ids(model)
    return model.eval()


def save_tiny_llm(
    directory: str | os.PathLike[str],
    *,
    seed: int = 0,
    chat_template: str | None = None,
    texts: Iterable[str] | None = None,
) -> Path:
    """Write a tokenizer and a :func:`tiny_llama` sized to it into ``directory``; return the path.

    The directory loads with ``AutoTokenizer.from_pretrained`` and
    ``AutoModelForCausalLM.from_pretrained``; bos/eos/pad ids agree across the tokenizer, the
    model config and the generation config.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = train_bpe_tokenizer(texts, chat_template=chat_template)
    model = tiny_llama(len(tokenizer), seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def set_special_ids(model: LlamaForCausalLM) -> None:
    """Make the generation config agree with the model config on bos/eos/pad."""
    generation = model.generation_config
    generation.bos_token_id = BOS_ID
    generation.eos_token_id = EOS_ID
    generation.pad_token_id = PAD_ID
