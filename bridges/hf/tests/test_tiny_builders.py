"""anymodal.testing's tiny builders, which every bridge test (and `builtin:tiny-untrained`) stands on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from anymodal.testing import CHATML_TEMPLATE, save_tiny_llm, tiny_llama, train_bpe_tokenizer


def test_tokenizer_is_deterministic_and_round_trips() -> None:
    first, second = train_bpe_tokenizer(), train_bpe_tokenizer()
    assert first.get_vocab() == second.get_vocab()
    assert len(first) == 512
    assert [first.unk_token_id, first.bos_token_id, first.eos_token_id, first.pad_token_id] == [0, 1, 2, 3]
    text = "### Human: <image>\nWhat colour?  Two spaces,\ttab, naïve 日本語 🙂\n\n### Assistant:"
    ids = first.encode(text, add_special_tokens=False)
    assert first.decode(ids) == text
    assert len(first.tokenize("### Human: What colour is the image?")) <= 10  # real merges, not bytes


def test_tokenizer_trains_on_given_texts() -> None:
    tokenizer = train_bpe_tokenizer(["aaa bbb aaa bbb"] * 3, vocab_size=300)
    assert 260 <= len(tokenizer) <= 300
    assert tokenizer.decode(tokenizer.encode("abc xyz", add_special_tokens=False)) == "abc xyz"


def test_tiny_llama_is_deterministic_per_seed_and_leaves_the_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = tiny_llama(64, seed=5)
    assert torch.equal(torch.rand(1), before)
    b, c = tiny_llama(64, seed=5), tiny_llama(64, seed=6)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    assert (a.config.hidden_size, a.config.num_hidden_layers, a.config.num_key_value_heads) == (32, 2, 2)


def test_save_tiny_llm_writes_a_loadable_consistent_directory(tmp_path: Path) -> None:
    start = time.perf_counter()
    directory = save_tiny_llm(tmp_path / "llm", chat_template=CHATML_TEMPLATE)
    assert time.perf_counter() - start < 2.0
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    assert model.config.vocab_size == len(tokenizer)
    ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == ids
    generation = json.loads((directory / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == ids
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n"


def test_importing_anymodal_testing_is_cheap() -> None:
    code = "import sys, anymodal.testing\nassert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
