"""Core projectors: encoder outputs into the LLM's token-embedding space.

Three are registered, each as a :class:`anymodal.ProjectorSpec` with an options dataclass that the
config layer validates ``modalities.<name>.projector.options`` into:

- ``linear``: PandaGPT's projection, the pooled vector to 1 token.
- ``mlp``: LLaVA-1.5's two-layer MLP, per feature token (or on the pooled vector).
- ``resampler``: K learned queries cross-attending over the feature tokens, K tokens out; for long
  sequences such as Whisper frames or video.

This module imports no torch: plugins import it when they register. The modules themselves live in
:mod:`anymodal.projectors.modules`, imported when a projector is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from anymodal.contract.errors import UsageError
from anymodal.contract.specs import EncoderGeometry, ProjectorSpec

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "PROJECTORS",
    "LinearOptions",
    "MLPOptions",
    "ResamplerOptions",
    "build_linear",
    "build_mlp",
    "build_resampler",
]


@dataclass(frozen=True)
class LinearOptions:
    #: Add a bias to the projection (PandaGPT has one).
    bias: bool = True


@dataclass(frozen=True)
class MLPOptions:
    #: Width of the hidden layer; None uses the LLM's hidden size (as LLaVA-1.5 does).
    hidden_dim: int | None = None
    #: "tokens": project every feature token (num_tokens = the encoder's); "pooled": 1 token.
    input: Literal["tokens", "pooled"] = "tokens"


@dataclass(frozen=True)
class ResamplerOptions:
    #: Number of learned queries, which is the number of tokens the projector makes.
    num_queries: int = 32
    num_heads: int = 8
    #: Number of cross-attention + feed-forward layers.
    depth: int = 1
    #: Working width of the attention; None uses the LLM's hidden size. Must divide by num_heads.
    dim: int | None = None
    #: Feed-forward width as a multiple of ``dim``.
    ffn_mult: int = 4
    #: Add fixed sinusoidal positions to the feature tokens, so token order (time) is seen.
    positions: bool = True


_Options = TypeVar("_Options")


def _coerce(cls: type[_Options], options: Any, projector: str) -> _Options:
    """``options`` as an instance of ``cls``: the instance itself, defaults for None, or a mapping."""
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if isinstance(options, Mapping):
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = [key for key in options if key not in known]
        if unknown:
            raise UsageError(
                f"projector {projector!r} has no option {unknown[0]!r}; its options are {', '.join(known)}"
            )
        return cls(**options)
    raise UsageError(
        f"projector {projector!r} options must be a {cls.__name__} or a mapping, not {options!r}"
    )


def _positive(projector: str, **values: int | None) -> None:
    for key, value in values.items():
        if value is not None and value < 1:
            raise UsageError(f"projector {projector!r}: option {key} must be at least 1, got {value}")


def build_linear(geometry: EncoderGeometry, llm_dim: int, options: LinearOptions | None = None) -> nn.Module:
    """A :class:`~anymodal.projectors.modules.LinearProjector`: ``[B, pooled_dim] -> [B, 1, llm_dim]``."""
    from anymodal.projectors.modules import LinearProjector

    opts = _coerce(LinearOptions, options, "linear")
    return LinearProjector(geometry, llm_dim, bias=opts.bias)


def build_mlp(geometry: EncoderGeometry, llm_dim: int, options: MLPOptions | None = None) -> nn.Module:
    """An :class:`~anymodal.projectors.modules.MLPProjector` on the feature tokens or the pooled vector."""
    from anymodal.projectors.modules import MLPProjector

    opts = _coerce(MLPOptions, options, "mlp")
    _positive("mlp", hidden_dim=opts.hidden_dim)
    if opts.input not in ("tokens", "pooled"):
        raise UsageError(f"projector 'mlp': option input must be 'tokens' or 'pooled', got {opts.input!r}")
    return MLPProjector(geometry, llm_dim, hidden_dim=opts.hidden_dim, input=opts.input)


def build_resampler(
    geometry: EncoderGeometry, llm_dim: int, options: ResamplerOptions | None = None
) -> nn.Module:
    """A :class:`~anymodal.projectors.modules.ResamplerProjector`: ``[B, T, Df] -> [B, K, llm_dim]``."""
    from anymodal.projectors.modules import ResamplerProjector

    opts = _coerce(ResamplerOptions, options, "resampler")
    _positive(
        "resampler",
        num_queries=opts.num_queries,
        num_heads=opts.num_heads,
        depth=opts.depth,
        dim=opts.dim,
        ffn_mult=opts.ffn_mult,
    )
    dim = opts.dim if opts.dim is not None else llm_dim
    if dim % opts.num_heads:
        raise UsageError(
            f"projector 'resampler': width {dim} does not divide by num_heads {opts.num_heads}; "
            "set the option dim or num_heads so that it does"
        )
    return ResamplerProjector(
        geometry,
        llm_dim,
        num_queries=opts.num_queries,
        num_heads=opts.num_heads,
        depth=opts.depth,
        dim=dim,
        ffn_mult=opts.ffn_mult,
        positions=opts.positions,
    )


PROJECTORS: list[ProjectorSpec] = [
    ProjectorSpec(
        name="linear",
        build=build_linear,
        options=LinearOptions,
        description="pooled vector -> 1 token through one Linear (PandaGPT)",
    ),
    ProjectorSpec(
        name="mlp",
        build=build_mlp,
        options=MLPOptions,
        description="Linear-GELU-Linear per feature token, or on the pooled vector (LLaVA-1.5)",
    ),
    ProjectorSpec(
        name="resampler",
        build=build_resampler,
        options=ResamplerOptions,
        description="K learned queries cross-attending over the feature tokens -> K tokens",
    ),
]
