"""The assembled runtime: modality encoders and projectors around a real (tiny) HF LLM."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import anymodal
from anymodal.config import load_config
from anymodal.contract.errors import AnymodalError, ConfigError, InputError, ModelLoadError, UsageError
from anymodal.contract.registry import load_registry
from anymodal.runtime.chat import ChatSession
from anymodal.runtime.model import AnyModalModel, scatter_embeddings
from anymodal.runtime.processor import Attachment, Slot, Turn
from anymodal.testing import save_tiny_llm, toy


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory) -> Path:
    return save_tiny_llm(tmp_path_factory.mktemp("llm"), seed=0)


@pytest.fixture
def registry():
    return load_registry(plugins=[toy])


def write_config(directory: Path, llm_dir: Path, body: str = "") -> Path:
    file = directory / "model.yaml"
    file.write_text(
        f"model:\n  llm:\n    path: {llm_dir}\n  template: plain\n  modalities:\n"
        "    toy: {}\n"
        "    toy_alt: {projector: {options: {input: pooled}}}\n" + body
    )
    return file


def write_npy(path: Path, seed: int, rows: int = 4) -> Path:
    np.save(path, np.random.default_rng(seed).standard_normal((rows, 8)).astype(np.float32))
    return path


@pytest.fixture
def model(tmp_path, llm_dir, registry) -> AnyModalModel:
    loaded = load_config(write_config(tmp_path, llm_dir), registry=registry)
    return AnyModalModel.from_config(loaded.config.model, registry)


def test_assembly_builds_each_modality_with_its_projector(model):
    assert sorted(model.encoders) == sorted(model.projectors) == ["toy", "toy_alt"]
    assert model.tokens_per_input("toy") == 1  # linear: pooled vector -> 1 token (PandaGPT)
    assert model.tokens_per_input("toy_alt") == 1  # mlp on the pooled vector
    assert model.projectors["toy"].proj.weight.shape == (model.bridge.hidden_size, 16)
    assert not any(p.requires_grad for p in model.encoders.parameters())
    assert all(p.requires_grad for p in model.projectors.parameters())


def test_encode_matches_encoder_then_projector(model, tmp_path):
    item = model.prepare("toy", write_npy(tmp_path / "a.npy", 1))
    [projected] = model.encode([item])
    with torch.no_grad():
        expected = model.projectors["toy"](model.encoders["toy"](item.tensor[None]))[0]
    assert projected.shape == (1, model.bridge.hidden_size)
    torch.testing.assert_close(projected, expected)


def test_mixed_modalities_in_one_batch_match_rows_run_alone(model, tmp_path):
    session = ChatSession.for_model(model, load_config(None).config, load_registry(plugins=[toy]))
    toy_a = model.prepare("toy", write_npy(tmp_path / "a.npy", 1))
    alt_b = model.prepare("toy_alt", write_npy(tmp_path / "b.npy", 2))
    alt_c = model.prepare("toy_alt", write_npy(tmp_path / "c.npy", 3))
    rows = [
        (
            Turn(
                anymodal.Message("user", "compare <toy> with <toy_alt> please"),
                (Attachment("toy", 1), Attachment("toy_alt", 1)),
            ),
            [toy_a, alt_b],
        ),
        (Turn(anymodal.Message("user", "what is this"), (Attachment("toy_alt", 1),)), [alt_c]),
    ]
    prompts = [session.processor.process([turn]) for turn, _ in rows]
    assert len(prompts[0].input_ids) != len(prompts[1].input_ids)  # padding is exercised
    embeds, mask = model.embed_batch(prompts, [inputs for _, inputs in rows])
    _, logits = model.bridge.forward(embeds, mask)
    for row, (prompt, (_, inputs)) in enumerate(zip(prompts, rows, strict=True)):
        alone_embeds, alone_mask = model.embed_batch([prompt], [inputs])
        _, alone = model.bridge.forward(alone_embeds, alone_mask)
        n = len(prompt.input_ids)
        torch.testing.assert_close(logits[row, :n], alone[0], atol=1e-5, rtol=1e-4)
        for slot, item in zip(prompt.slots, inputs, strict=True):
            torch.testing.assert_close(embeds[row, slot.start], model.encode([item])[0][0])


def test_scatter_rejects_a_count_or_length_mismatch():
    embeds = torch.zeros(1, 6, 4)
    slot = Slot("image", 0, start=1, length=3)
    with pytest.raises(
        AnymodalError, match=r"image span at position 1 has 3 token\(s\) but its projector made 2"
    ):
        scatter_embeddings(embeds, [[slot]], [[torch.ones(2, 4)]])
    with pytest.raises(AnymodalError, match=r"reserves 1 input span\(s\) but 2 input\(s\) were encoded"):
        scatter_embeddings(embeds, [[slot]], [[torch.ones(3, 4), torch.ones(3, 4)]])
    out = scatter_embeddings(embeds, [[slot]], [[torch.ones(3, 4)]])
    assert out[0, 1:4].eq(1).all() and out[0, 0].eq(0).all() and out[0, 4:].eq(0).all()


def test_pandagpt_sum_mode_puts_the_sum_of_projections_in_one_token(tmp_path, llm_dir, registry):
    file = write_config(tmp_path, llm_dir, "")
    loaded = load_config(file, ["model.fusion=sum", "model.template=pandagpt"], registry=registry)
    session = ChatSession.from_config(loaded.config, registry)
    a = session.attach("toy", write_npy(tmp_path / "a.npy", 1))
    b = session.attach("toy_alt", write_npy(tmp_path / "b.npy", 2))
    prompt = session.processor.process(session._conversation(session_turn := _turn(session, "What is it?")))
    [slot] = prompt.slots
    assert slot.length == 1 and slot.input_indices == (0, 1)
    embeds = session._embed(prompt.input_ids, prompt.slots, session_turn.inputs)
    model = session.model
    expected = model.encode([a])[0][0] + model.encode([b])[0][0]  # each projection carries its own bias
    torch.testing.assert_close(embeds[0, slot.start], expected)
    assert model.bridge.decode(prompt.input_ids[: slot.start]).endswith("### Human: <Img>")


def _turn(session, text):
    from anymodal.runtime.chat import ChatTurn

    return ChatTurn(text, list(session.pending))


def test_projector_weights_load_strictly(tmp_path, llm_dir, registry, model):
    good = tmp_path / "toy.safetensors"
    save_file({k: torch.full_like(v, 0.5) for k, v in model.projectors["toy"].state_dict().items()}, good)
    loaded = load_config(
        write_config(tmp_path, llm_dir), [f"model.modalities.toy.projector.weights={good}"], registry
    )
    reloaded = AnyModalModel.from_config(loaded.config.model, registry)
    assert reloaded.projectors["toy"].proj.weight.eq(0.5).all()

    bad = tmp_path / "bad.safetensors"
    save_file({"proj.weight": torch.zeros(3, 3)}, bad)
    loaded = load_config(
        write_config(tmp_path, llm_dir), [f"model.modalities.toy.projector.weights={bad}"], registry
    )
    with pytest.raises(
        ModelLoadError, match=r"bad.safetensors does not fit the linear projector of toy: missing proj.bias"
    ):
        AnyModalModel.from_config(loaded.config.model, registry)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.npy", None, "toy file not found"),
        ("empty.npy", b"", "toy file is empty"),
        ("notes.txt", b"hello", "toy does not accept .txt"),
        ("corrupt.npy", b"\x93NUMPY garbage", "toy .npy file has a damaged header"),
    ],
)
def test_bad_input_files_get_one_clear_error(model, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        model.prepare("toy", path)
    assert str(path) in str(info.value)


def test_modality_the_model_lacks_is_a_usage_error(model, tmp_path):
    with pytest.raises(UsageError, match=r"not built with the audio modality \(it accepts: toy, toy_alt\)"):
        model.prepare("audio", tmp_path / "x.wav")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runtime_runs_in_bfloat16_on_cuda(tmp_path, llm_dir, registry):
    loaded = load_config(
        write_config(tmp_path, llm_dir), ["model.device=cuda", "model.dtype=bfloat16"], registry
    )
    session = ChatSession.from_config(loaded.config, registry)
    assert session.model.bridge.dtype == torch.bfloat16
    assert next(session.model.projectors.parameters()).device.type == "cuda"
    session.attach("toy", write_npy(tmp_path / "a.npy", 1))
    reply = "".join(session.ask("what is it?"))
    assert isinstance(reply, str) and session.encoded_count == 1


def test_unknown_preprocess_option_is_a_config_error(tmp_path, llm_dir, registry):
    file = write_config(tmp_path, llm_dir)
    with pytest.raises(
        ConfigError, match=r"unknown key 'model.modalities.toy.preprocess.tokns' \(did you mean 'tokens'\?\)"
    ):
        load_config(file, ["model.modalities.toy.preprocess.tokns=3"], registry)
    loaded = load_config(file, ["model.modalities.toy.preprocess.tokens=3"], registry)
    assert AnyModalModel.from_config(loaded.config.model, registry).prepare(
        "toy", write_npy(tmp_path / "a.npy", 1)
    ).tensor.shape == (3, 8)


def test_an_encoder_without_weights_is_built_the_same_every_time() -> None:
    from anymodal.config import EncoderConfig
    from anymodal.runtime.model import build_encoder

    registry = load_registry()
    spec = registry.modalities["image"]
    small = {"vision_embed_dim": 16, "vision_num_blocks": 1, "vision_num_heads": 2, "out_embed_dim": 8}
    config = (
        load_config("hf-llm", [f"model.modalities.image.encoder.options.config={small}"], registry=registry)
        .config.model.modalities["image"]
        .encoder
    )
    torch.manual_seed(123)
    first = build_encoder(spec, config, registry).state_dict()
    state = torch.get_rng_state()
    second = build_encoder(spec, config, registry).state_dict()
    assert torch.equal(state, torch.get_rng_state())  # the caller's random stream is left alone
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert isinstance(config, EncoderConfig)


def test_encoders_run_where_they_are_and_projections_arrive_in_the_llms_place(model, tmp_path):
    """model.encoder_device keeps encoders away from the LLM: inputs go to the encoder's own device
    and dtype, its outputs to the projector's. Simulated on the CPU with a bfloat16 encoder."""
    prepared = model.prepare("toy", write_npy(tmp_path / "x.npy", seed=3))
    (reference,) = model.encode([prepared])
    model.encoders["toy"].to(torch.bfloat16)
    (projected,) = model.encode([prepared])
    assert projected.dtype == model.bridge.dtype == torch.float32
    torch.testing.assert_close(projected, reference, rtol=0.05, atol=0.05)


def test_encoder_device_is_checked_like_device(tmp_path, llm_dir, registry):
    with pytest.raises(ConfigError, match=r"model\.encoder_device: 'gpu' is not a device"):
        load_config(write_config(tmp_path, llm_dir), ["model.encoder_device=gpu"], registry=registry)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_encoders_stay_on_the_cpu_beside_an_llm_on_cuda(tmp_path, llm_dir, registry):
    overrides = ["model.device=cuda", "model.encoder_device=cpu"]
    loaded = load_config(write_config(tmp_path, llm_dir), overrides, registry=registry)
    model = AnyModalModel.from_config(loaded.config.model, registry)
    assert {p.device.type for p in model.encoders.parameters()} == {"cpu"}
    assert {p.device.type for p in model.projectors.parameters()} == {"cuda"}
    (projected,) = model.encode([model.prepare("toy", write_npy(tmp_path / "x.npy", seed=4))])
    assert projected.device.type == "cuda" and projected.dtype == model.bridge.dtype


def test_an_encoder_with_weights_skips_its_random_initialisation(tmp_path, llm_dir, monkeypatch):
    from anymodal.encoders.imagebind.model import ImageBind
    from anymodal.testing import TINY_IMAGEBIND, save_tiny_imagebind

    weights = save_tiny_imagebind(tmp_path / "imagebind.pth", seed=5)
    registry = load_registry()
    config = tmp_path / "ib.yaml"
    encoder = {"weights": str(weights), "options": {"config": TINY_IMAGEBIND}}
    config.write_text(
        f"model:\n  llm: {{path: {llm_dir}}}\n  modalities:\n    image: {{encoder: {encoder}}}\n"
    )
    loaded = load_config(config, registry=registry).config.model

    def refuse(self: ImageBind) -> None:
        raise AssertionError("random initialisation of an encoder whose weights are given")

    monkeypatch.setattr(ImageBind, "init_weights", refuse)
    model = AnyModalModel.from_config(loaded, registry)
    saved = torch.load(weights, weights_only=True)
    for name, tensor in model.encoders["image"].model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def test_a_meta_load_encoder_that_leaves_tensors_unloaded_is_refused(tmp_path, llm_dir):
    lazy = types.ModuleType("lazy_encoder_plugin")
    lazy.ANYMODAL_CONTRACT = 1  # type: ignore[attr-defined]

    class Lazy(torch.nn.Module):
        geometry = anymodal.EncoderGeometry(4, 1, 4)

        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(8, 4)

        def load_weights(self, path: str) -> None:
            pass  # forgets to assign anything

    @anymodal.hookimpl
    def register_encoders(register):
        register(anymodal.EncoderSpec(name="lazy", build=lambda modality, options: Lazy(), meta_load=True))

    lazy.register_encoders = register_encoders  # type: ignore[attr-defined]
    registry = load_registry(plugins=[toy, lazy])
    (tmp_path / "w.safetensors").write_bytes(b"")
    body = f"    toy: {{encoder: {{name: lazy, weights: {tmp_path / 'w.safetensors'}}}}}\n"
    file = tmp_path / "lazy.yaml"
    file.write_text(f"model:\n  llm: {{path: {llm_dir}}}\n  modalities:\n{body}")
    with pytest.raises(
        ModelLoadError, match=r"the lazy encoder of toy left 2 tensors unloaded .* e\.g\. proj\.weight"
    ):
        AnyModalModel.from_config(load_config(file, registry=registry).config.model, registry)


def test_projectors_without_weights_start_from_the_init_seed(tmp_path, llm_dir, registry) -> None:
    config = load_config(write_config(tmp_path, llm_dir), registry=registry).config.model

    def projector_state(seed: int) -> dict[str, torch.Tensor]:
        return {
            f"{name}.{key}": value.clone()
            for name, projector in AnyModalModel.from_config(
                config, registry, init_seed=seed
            ).projectors.items()
            for key, value in projector.state_dict().items()
        }

    torch.manual_seed(123)
    first = projector_state(0)
    state = torch.get_rng_state()
    torch.manual_seed(456)  # whatever the caller's random state, the same seed builds the same weights
    second = projector_state(0)
    torch.set_rng_state(state)
    other = projector_state(1)
    assert torch.equal(state, torch.get_rng_state())  # the caller's random stream is left alone
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_an_input_given_as_its_encoder_output_projects_as_the_file_does(model, tmp_path):
    from anymodal.runtime.given import read_embedding_file

    item = model.prepare("toy", write_npy(tmp_path / "a.npy", 1))
    with torch.no_grad():
        encoded = model.encoders["toy"](item.tensor[None])
    torch.save({"pooled": encoded.pooled[0], "features": encoded.features[0]}, tmp_path / "a.pt")
    given = model.prepare_embedding("toy", read_embedding_file(tmp_path / "a.pt", "toy"), tmp_path / "a.pt")
    pooled_only = model.prepare_embedding(
        "toy", encoded.pooled[0].clone()
    )  # the linear projector reads only it
    from_file, from_embedding, from_pooled = model.encode([item, given, pooled_only])
    torch.testing.assert_close(from_embedding, from_file)
    torch.testing.assert_close(from_pooled, from_file)
    assert given.key == model.prepare_embedding("toy", dict(given.encoded._asdict())).key
    assert given.key.startswith("toy:embedding:") and given.key != pooled_only.key  # NaN features differ


def test_a_given_embedding_of_the_wrong_shape_or_kind_is_one_input_error(model, tmp_path):
    from anymodal.runtime.given import read_embedding_file

    with pytest.raises(
        InputError, match=r"toy embedding tensor: pooled has shape \[7\], the toy encoder's is \[16\]"
    ):
        model.prepare_embedding("toy", torch.zeros(7))
    with pytest.raises(InputError, match=r"tensor of shape \[1, 2, 16\]"):
        model.prepare_embedding("toy", torch.zeros(1, 2, 16))
    with pytest.raises(InputError, match="holds pooled, extra"):
        model.prepare_embedding("toy", {"pooled": torch.zeros(16), "extra": torch.zeros(1)})
    with pytest.raises(InputError, match="finite floating-point"):
        model.prepare_embedding("toy", torch.full((16,), float("inf")))
    text = tmp_path / "notes.pt"
    text.write_text("not a tensor")
    with pytest.raises(InputError, match=r"cannot read toy embedding file .*notes\.pt"):
        read_embedding_file(text, "toy")


def test_an_embedding_lacking_what_the_projector_reads_is_refused(tmp_path, llm_dir, registry):
    config = write_config(tmp_path, llm_dir).read_text()
    file = tmp_path / "features.yaml"
    file.write_text(config.replace("toy: {}", "toy: {projector: {name: mlp, options: {input: tokens}}}"))
    model = AnyModalModel.from_config(load_config(file, registry=registry).config.model, registry)
    with pytest.raises(
        InputError, match="toy embedding tensor has no features, which the toy projector reads"
    ):
        model.prepare_embedding("toy", torch.zeros(16))
    model.prepare_embedding("toy", torch.zeros(4, 16))  # the features alone are enough for it


def test_a_chat_turn_with_an_attached_embedding_equals_one_with_the_file(model, tmp_path):
    session = ChatSession.for_model(model, load_config(None).config, load_registry(plugins=[toy]))
    item = session.attach("toy", write_npy(tmp_path / "a.npy", 1))
    with_file = "".join(session.ask("Describe it."))
    with torch.no_grad():
        encoded = model.encoders["toy"](item.tensor[None])
    session.reset()
    session.attach_embedding("toy", {"features": encoded.features[0], "pooled": encoded.pooled[0]})
    assert "".join(session.ask("Describe it.")) == with_file
    assert session.encoded_count == 1  # the file went through the encoder once; the embedding never
