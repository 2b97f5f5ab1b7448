"""Projector shapes, PandaGPT-compatible linear keys and maths, gradients, torch-free registration."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from anymodal import EncoderGeometry, EncoderOutput, PluginError, UsageError
from anymodal.projectors.specs import PROJECTORS, LinearOptions, MLPOptions, ResamplerOptions

GEOMETRY = EncoderGeometry(feature_dim=12, num_tokens=5, pooled_dim=8)
LLM_DIM = 16
BUILD = {spec.name: spec.build for spec in PROJECTORS}


def encoder_output(batch: int = 2, tokens: int = 5, seed: int = 0) -> EncoderOutput:
    generator = torch.Generator().manual_seed(seed)
    return EncoderOutput(
        features=torch.randn(batch, tokens, GEOMETRY.feature_dim, generator=generator),
        pooled=torch.randn(batch, GEOMETRY.pooled_dim, generator=generator),
    )


def test_registered_projectors_have_option_classes():
    assert {spec.name: spec.options for spec in PROJECTORS} == {
        "linear": LinearOptions,
        "mlp": MLPOptions,
        "resampler": ResamplerOptions,
    }


def test_linear_keys_shapes_and_maths():
    projector = BUILD["linear"](GEOMETRY, LLM_DIM, None)
    state = projector.state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == {
        "proj.weight": (LLM_DIM, GEOMETRY.pooled_dim),
        "proj.bias": (LLM_DIM,),
    }
    assert projector.num_tokens == 1
    inputs = encoder_output()
    out = projector(inputs)
    assert out.shape == (2, 1, LLM_DIM)
    by_hand = inputs.pooled @ state["proj.weight"].T + state["proj.bias"]
    torch.testing.assert_close(out[:, 0], by_hand)


def test_linear_without_bias():
    projector = BUILD["linear"](GEOMETRY, LLM_DIM, LinearOptions(bias=False))
    assert list(projector.state_dict()) == ["proj.weight"]


def test_mlp_on_tokens_and_on_pooled():
    on_tokens = BUILD["mlp"](GEOMETRY, LLM_DIM, MLPOptions(hidden_dim=20))
    assert on_tokens.num_tokens == GEOMETRY.num_tokens
    assert on_tokens(encoder_output()).shape == (2, GEOMETRY.num_tokens, LLM_DIM)
    shapes = {key: tuple(value.shape) for key, value in on_tokens.state_dict().items()}
    assert shapes == {
        "mlp.0.weight": (20, 12),
        "mlp.0.bias": (20,),
        "mlp.2.weight": (16, 20),
        "mlp.2.bias": (16,),
    }

    on_pooled = BUILD["mlp"](GEOMETRY, LLM_DIM, MLPOptions(input="pooled"))
    assert on_pooled.num_tokens == 1
    assert on_pooled(encoder_output()).shape == (2, 1, LLM_DIM)
    assert on_pooled.state_dict()["mlp.0.weight"].shape == (LLM_DIM, GEOMETRY.pooled_dim)  # hidden = llm_dim


def test_mlp_is_per_token():
    projector = BUILD["mlp"](GEOMETRY, LLM_DIM, None)
    inputs = encoder_output()
    changed = inputs.features.clone()
    changed[:, 3] += 1.0
    before, after = projector(inputs), projector(EncoderOutput(changed, inputs.pooled))
    torch.testing.assert_close(before[:, :3], after[:, :3])
    assert not torch.allclose(before[:, 3], after[:, 3])


def test_resampler_shape_and_attention():
    projector = BUILD["resampler"](GEOMETRY, LLM_DIM, ResamplerOptions(num_queries=3, num_heads=4, depth=2))
    assert projector.num_tokens == 3
    inputs = encoder_output(tokens=7)  # any number of feature tokens
    out = projector(inputs)
    assert out.shape == (2, 3, LLM_DIM)
    changed = inputs.features.clone()
    changed[1, 6] = 5.0
    after = projector(EncoderOutput(changed, inputs.pooled))
    torch.testing.assert_close(out[0], after[0])  # the other batch item is untouched
    assert not torch.allclose(out[1], after[1])


def test_resampler_sees_token_order():
    projector = BUILD["resampler"](GEOMETRY, LLM_DIM, ResamplerOptions(num_queries=2, num_heads=2))
    inputs = encoder_output()
    reversed_features = inputs.features.flip(1)
    assert not torch.allclose(projector(inputs), projector(EncoderOutput(reversed_features, inputs.pooled)))


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("linear", None),
        ("mlp", MLPOptions()),
        ("mlp", MLPOptions(input="pooled")),
        ("resampler", ResamplerOptions(num_queries=2, num_heads=2, depth=2)),
    ],
)
def test_gradients_reach_every_parameter(name, options):
    projector = BUILD[name](GEOMETRY, LLM_DIM, options)
    projector(encoder_output()).square().sum().backward()
    missing = [key for key, p in projector.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_options_from_a_mapping_and_bad_options():
    assert BUILD["resampler"](GEOMETRY, LLM_DIM, {"num_queries": 4, "num_heads": 2}).num_tokens == 4
    with pytest.raises(UsageError, match="projector 'mlp' has no option 'hiden_dim'"):
        BUILD["mlp"](GEOMETRY, LLM_DIM, {"hiden_dim": 3})
    with pytest.raises(UsageError, match="width 16 does not divide by num_heads 3"):
        BUILD["resampler"](GEOMETRY, LLM_DIM, ResamplerOptions(num_heads=3))
    with pytest.raises(UsageError, match="num_queries must be at least 1"):
        BUILD["resampler"](GEOMETRY, LLM_DIM, ResamplerOptions(num_queries=0))


def test_wrong_encoder_output_is_a_one_line_error():
    projector = BUILD["mlp"](GEOMETRY, LLM_DIM, None)
    with pytest.raises(PluginError, match=r"expects 5 feature tokens but got 7"):
        projector(encoder_output(tokens=7))
    with pytest.raises(PluginError, match=r"expects pooled \[batch, dim\] with dim 8 but got shape \[2, 3\]"):
        BUILD["linear"](GEOMETRY, LLM_DIM, None)(EncoderOutput(torch.zeros(2, 5, 12), torch.zeros(2, 3)))


def test_projector_follows_its_dtype():
    projector = BUILD["linear"](GEOMETRY, LLM_DIM, None).to(torch.bfloat16)
    assert projector(encoder_output()).dtype == torch.bfloat16


def test_importing_projectors_does_not_import_torch():
    modules = "anymodal.projectors.specs, anymodal.runtime.templates, anymodal.runtime.processor"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
