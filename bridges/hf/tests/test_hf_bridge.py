"""Loading, tokenizing, embedding, the training forward, and the errors users see."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from anymodal_hf.bridge import HFBridge
from anymodal_hf.loading import quantization_config

import anymodal
from anymodal.testing import CHATML_TEMPLATE, save_tiny_llm, train_bpe_tokenizer


def load(path: Path | str, **settings: object) -> HFBridge:
    return HFBridge.load(anymodal.LLMSettings(path=str(path), **settings), "cpu", "float32")  # type: ignore[arg-type]


def test_attributes_follow_the_model_and_tokenizer(bridge: HFBridge) -> None:
    assert bridge.hidden_size == 32
    assert (bridge.bos_token_id, bridge.eos_token_id, bridge.pad_token_id) == (1, 2, 3)
    assert bridge.device == torch.device("cpu")
    assert bridge.dtype == torch.float32
    assert not any(p.requires_grad for p in bridge.module.parameters())


def test_tokenize_adds_no_special_tokens_and_decode_skips_them(bridge: HFBridge) -> None:
    text = "### Human: colour?\n  two  spaces, café 日本 🙂"
    ids = bridge.tokenize(text)
    assert bridge.bos_token_id not in ids
    assert bridge.decode(ids) == text
    assert bridge.tokenize("</s>") == [bridge.eos_token_id]  # special-token text is honoured
    assert bridge.decode([bridge.bos_token_id, *ids, bridge.eos_token_id]) == text


def test_pad_token_falls_back_to_eos(tmp_path: Path) -> None:
    directory = save_tiny_llm(tmp_path)
    tokenizer = train_bpe_tokenizer()
    tokenizer.pad_token = None
    tokenizer.save_pretrained(directory)
    bridge = load(directory)
    assert bridge.pad_token_id == bridge.eos_token_id == 2


def test_chat_template_render(bridge: HFBridge, tmp_path: Path) -> None:
    messages = [anymodal.Message("system", "Be brief."), anymodal.Message("user", "What is <image>?")]
    assert bridge.chat_template_render(messages, True) is None
    templated = load(save_tiny_llm(tmp_path, chat_template=CHATML_TEMPLATE))
    expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is <image>?<|im_end|>\n"
    assert templated.chat_template_render(messages, False) == expected
    assert templated.chat_template_render(messages, True) == expected + "<|im_start|>assistant\n"


def test_embed_returns_embedding_rows(bridge: HFBridge) -> None:
    ids = torch.tensor([[5, 17, 2], [300, 0, 511]])
    embeds = bridge.embed(ids)
    assert embeds.shape == (2, 3, 32)
    weight = bridge.module.get_input_embeddings().weight
    torch.testing.assert_close(embeds, weight[ids], rtol=0, atol=0)


def test_forward_loss_is_shifted_cross_entropy_over_labelled_tokens(bridge: HFBridge) -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 512, (2, 9), generator=generator)
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :4] = -100  # the prompt
    labels[1, -2:] = -100  # padding
    embeds = bridge.embed(ids)
    loss, logits = bridge.forward(embeds, mask, labels)
    assert logits.shape == (2, 9, len(bridge.tokenizer))
    shifted_logits, shifted_labels = logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
    kept = shifted_labels != -100
    expected = torch.nn.functional.cross_entropy(shifted_logits[kept], shifted_labels[kept])
    assert loss is not None
    torch.testing.assert_close(loss, expected)
    no_loss, same_logits = bridge.forward(embeds, mask)
    assert no_loss is None
    torch.testing.assert_close(same_logits, logits)


def test_forward_backpropagates_into_inputs_embeds(bridge: HFBridge) -> None:
    embeds = bridge.embed(torch.tensor([[1, 40, 41, 42]])).detach().requires_grad_(True)
    loss, _ = bridge.forward(embeds, torch.ones(1, 4, dtype=torch.long), torch.tensor([[-100, 41, 42, 2]]))
    assert loss is not None
    loss.backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0


def test_options_are_passed_to_transformers(tiny_dir: Path, make_prompt) -> None:
    eager = load(tiny_dir, options={"attn_implementation": "eager", "trust_remote_code": False})
    default = load(tiny_dir, options={"revision": None})
    assert eager.module.config._attn_implementation == "eager"
    embeds, mask = make_prompt(eager)
    torch.testing.assert_close(eager.forward(embeds, mask)[1], default.forward(embeds, mask)[1])


def assert_one_line(error: pytest.ExceptionInfo[anymodal.AnymodalError], *needles: str) -> None:
    text = str(error.value)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, text


def test_unknown_option_key_names_it_and_suggests(tiny_dir: Path) -> None:
    with pytest.raises(anymodal.UsageError) as error:
        load(tiny_dir, options={"trust_remote_cod": True})
    assert_one_line(
        error,
        "trust_remote_cod",
        "did you mean 'trust_remote_code'",
        "attn_implementation, quantization, revision",
    )


def test_option_of_the_wrong_type(tiny_dir: Path) -> None:
    with pytest.raises(anymodal.UsageError) as error:
        load(tiny_dir, options={"trust_remote_code": "yes"})
    assert_one_line(error, "trust_remote_code", "bool")


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(anymodal.ModelLoadError) as error:
        load(missing)
    assert_one_line(error, str(missing), "not found")


def test_directory_without_config_json(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(anymodal.ModelLoadError) as error:
        load(tmp_path)
    assert_one_line(error, str(tmp_path), "config.json")


def test_corrupt_weights(tmp_path: Path) -> None:
    directory = save_tiny_llm(tmp_path)
    (directory / "model.safetensors").write_bytes(b"\x00garbage, not safetensors")
    with pytest.raises(anymodal.ModelLoadError) as error:
        load(directory)
    assert_one_line(error, str(directory), "LLM weights")


def test_unknown_architecture(tmp_path: Path) -> None:
    directory = save_tiny_llm(tmp_path)
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = "no_such_architecture"
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(anymodal.ModelLoadError) as error:
        load(directory)
    assert_one_line(error, "no_such_architecture", str(directory), "trust_remote_code")


def test_hub_id_without_network_says_how_to_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(anymodal.ModelLoadError) as error:
        load("anymodal-tests/not-a-real-model")
    assert_one_line(
        error, "anymodal-tests/not-a-real-model", "huggingface-cli download", "model.llm.path=DIR"
    )


def test_missing_adapter_directory(tiny_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-adapter"
    with pytest.raises(anymodal.ModelLoadError) as error:
        load(tiny_dir, adapter=str(missing))
    assert_one_line(error, str(missing), "adapter")


def test_adapter_directory_without_adapter_config(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(anymodal.ModelLoadError) as error:
        load(tiny_dir, adapter=str(tmp_path))
    assert_one_line(error, str(tmp_path), "adapter_config.json")


def test_bad_dtype_and_unavailable_device(tiny_dir: Path) -> None:
    settings = anymodal.LLMSettings(path=str(tiny_dir))
    with pytest.raises(anymodal.UsageError, match="float64"):
        HFBridge.load(settings, "cpu", "float64")
    if not torch.cuda.is_available():
        with pytest.raises(anymodal.UsageError, match="CUDA is not available"):
            HFBridge.load(settings, "cuda", "float32")


def test_save_without_lora_writes_a_loadable_model(bridge: HFBridge, tmp_path: Path, make_prompt) -> None:
    bridge.save(tmp_path / "out")
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    reloaded = load(tmp_path / "out")
    embeds, mask = make_prompt(bridge)
    torch.testing.assert_close(
        reloaded.forward(embeds, mask)[1], bridge.forward(embeds, mask)[1], rtol=0, atol=0
    )
    shutil.rmtree(tmp_path / "out")


def test_right_padding_leaves_real_positions_unchanged(bridge: HFBridge) -> None:
    short, long = [1, 40, 41], [1, 50, 51, 52, 53]
    ids = torch.tensor([short + [bridge.pad_token_id] * 2, long])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    _, batched = bridge.forward(bridge.embed(ids), mask)
    _, alone = bridge.forward(bridge.embed(torch.tensor([short])), torch.ones(1, 3, dtype=torch.long))
    torch.testing.assert_close(batched[0, :3], alone[0])


def test_quantization_must_be_8bit_or_4bit(tiny_dir: Path) -> None:
    with pytest.raises(anymodal.UsageError) as error:
        load(tiny_dir, options={"quantization": "int8"})
    assert_one_line(error, "model.llm.options.quantization must be one of 8bit, 4bit, got 'int8'")


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantization_on_the_cpu_says_it_needs_a_gpu(tiny_dir: Path, quantization: str) -> None:
    with pytest.raises(anymodal.UsageError) as error:
        load(tiny_dir, options={"quantization": quantization})
    assert_one_line(
        error, f"model.llm.options.quantization={quantization} needs a CUDA GPU", "model.device=cuda"
    )


def test_quantization_without_bitsandbytes_says_how_to_install_it() -> None:
    if importlib.util.find_spec("bitsandbytes") is not None:
        config = quantization_config("4bit", torch.bfloat16, torch.device("cuda"))
        assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
        return
    with pytest.raises(anymodal.UsageError) as error:
        quantization_config("8bit", torch.float16, torch.device("cuda"))
    assert_one_line(error, "needs bitsandbytes, which is not installed", "anymodal install bitsandbytes")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_a_quantized_llm_loads_and_embeds_on_cuda(tiny_dir: Path, quantization: str) -> None:
    pytest.importorskip("bitsandbytes")
    bridge = HFBridge.load(
        anymodal.LLMSettings(path=str(tiny_dir), options={"quantization": quantization}), "cuda", "bfloat16"
    )
    ids = torch.tensor([bridge.tokenize("Hello there")], device=bridge.device)
    _, logits = bridge.forward(bridge.embed(ids), torch.ones_like(ids))
    assert logits.shape[:2] == ids.shape and torch.isfinite(logits.float()).all()
