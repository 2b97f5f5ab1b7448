"""The projector modules. Each has an int ``num_tokens``, a tuple ``reads`` naming the parts of
the :class:`~anymodal.EncoderOutput` its forward reads (``"features"``, ``"pooled"``; the training
feature cache stores only those), and ``forward(EncoderOutput) -> Tensor [batch, num_tokens, llm_dim]``.

Inputs are cast to the projector's own dtype: encoders often run in float32 while the projector
follows the LLM (bfloat16 on GPU), and the cast belongs to the side that knows its dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from anymodal.contract.errors import PluginError
from anymodal.contract.specs import EncoderGeometry, EncoderOutput


def _check_last_dim(projector: str, what: str, tensor: torch.Tensor, ndim: int, dim: int) -> None:
    """Fail with one line when an encoder returns other shapes than its geometry promised."""
    if tensor.ndim != ndim or tensor.shape[-1] != dim:
        layout = "[batch, tokens, dim]" if ndim == 3 else "[batch, dim]"
        raise PluginError(
            f"projector {projector!r} expects {what} {layout} with dim {dim} but got shape "
            f"{list(tensor.shape)}; the encoder's geometry does not match what it returns"
        )


class LinearProjector(nn.Module):
    """PandaGPT's projection: ``pooled [B, Dp] -> [B, 1, H]`` through ``nn.Linear(Dp, H)``.

    The Linear is the attribute ``proj`` (state-dict keys ``proj.weight [H, Dp]`` and
    ``proj.bias [H]``), so PandaGPT's ``llama_proj.weight`` / ``llama_proj.bias`` load onto it.
    """

    def __init__(self, geometry: EncoderGeometry, llm_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.num_tokens = 1
        self.reads: tuple[str, ...] = ("pooled",)
        self.proj = nn.Linear(geometry.pooled_dim, llm_dim, bias=bias)

    def forward(self, encoder_output: EncoderOutput) -> torch.Tensor:
        """``pooled [B, Dp] -> [B, 1, H]``."""
        pooled = encoder_output.pooled
        _check_last_dim("linear", "pooled", pooled, 2, self.proj.in_features)
        return self.proj(pooled.to(self.proj.weight.dtype)).unsqueeze(1)


class MLPProjector(nn.Module):
    """LLaVA-1.5's projector: ``Linear(D, hidden) -> GELU -> Linear(hidden, H)``.

    ``input="tokens"``: applied per token, ``features [B, T, Df] -> [B, T, H]`` with
    ``num_tokens = geometry.num_tokens``. ``input="pooled"``: ``pooled [B, Dp] -> [B, 1, H]``.
    The layers are ``mlp.0`` and ``mlp.2``, the layout of LLaVA's ``mm_projector``.
    """

    def __init__(
        self,
        geometry: EncoderGeometry,
        llm_dim: int,
        hidden_dim: int | None = None,
        input: str = "tokens",
    ) -> None:
        super().__init__()
        self.input = input
        self.reads: tuple[str, ...] = ("features",) if input == "tokens" else ("pooled",)
        in_dim = geometry.feature_dim if input == "tokens" else geometry.pooled_dim
        self.num_tokens = geometry.num_tokens if input == "tokens" else 1
        hidden = hidden_dim if hidden_dim is not None else llm_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, llm_dim))

    def forward(self, encoder_output: EncoderOutput) -> torch.Tensor:
        """``features [B, T, Df] -> [B, T, H]``, or ``pooled [B, Dp] -> [B, 1, H]``."""
        first = self.mlp[0]
        assert isinstance(first, nn.Linear)
        if self.input == "pooled":
            _check_last_dim("mlp", "pooled", encoder_output.pooled, 2, first.in_features)
            x = encoder_output.pooled.unsqueeze(1)
        else:
            x = encoder_output.features
            _check_last_dim("mlp", "features", x, 3, first.in_features)
            if x.shape[1] != self.num_tokens:
                raise PluginError(
                    f"projector 'mlp' expects {self.num_tokens} feature tokens but got {x.shape[1]}; "
                    "the encoder's geometry does not match what it returns"
                )
        return self.mlp(x.to(first.weight.dtype))


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Fixed sine/cosine positions ``[length, dim]`` (Transformer style), for any length."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=device) / max(half, 1))
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * frequencies[None]
    table = torch.zeros(length, dim, device=device)
    table[:, 0 : 2 * half : 2] = torch.sin(angles)
    table[:, 1 : 2 * half : 2] = torch.cos(angles)
    return table


class CrossAttentionLayer(nn.Module):
    """Pre-norm cross-attention of queries over a context, then a feed-forward, both residual.

    ``queries [B, K, D], context [B, T, D] -> [B, K, D]``.
    """

    def __init__(self, dim: int, num_heads: int, ffn_mult: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm_queries = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, D] -> [B, heads, L, D / heads]``."""
        batch, length, dim = x.shape
        return x.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = self._heads(self.to_q(self.norm_queries(queries)))
        k, v = self.to_kv(self.norm_context(context)).chunk(2, dim=-1)
        attended = F.scaled_dot_product_attention(q, self._heads(k), self._heads(v))
        batch, _, num_queries, _ = attended.shape
        queries = queries + self.out(attended.transpose(1, 2).reshape(batch, num_queries, -1))
        return queries + self.ffn(self.norm_ffn(queries))


class ResamplerProjector(nn.Module):
    """K learned queries cross-attend over the feature tokens: ``features [B, T, Df] -> [B, K, H]``.

    The features are projected to the working width ``dim`` (plus fixed sinusoidal positions, so
    the order of frames is visible), ``depth`` cross-attention layers update the queries, and a
    final LayerNorm + Linear maps them to the LLM width. T may vary between calls.
    """

    def __init__(
        self,
        geometry: EncoderGeometry,
        llm_dim: int,
        num_queries: int = 32,
        num_heads: int = 8,
        depth: int = 1,
        dim: int | None = None,
        ffn_mult: int = 4,
        positions: bool = True,
    ) -> None:
        super().__init__()
        dim = dim if dim is not None else llm_dim
        self.num_tokens = num_queries
        self.reads: tuple[str, ...] = ("features",)
        self.positions = positions
        self.feature_dim = geometry.feature_dim
        self.input_proj = nn.Linear(geometry.feature_dim, dim)
        # Small random queries, as in Flamingo / Qwen-VL, so they start near the LayerNorm's centre
        # but differ from each other and so attend differently.
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, num_heads, ffn_mult) for _ in range(depth))
        self.norm_out = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, llm_dim)

    def forward(self, encoder_output: EncoderOutput) -> torch.Tensor:
        """``features [B, T, Df] -> [B, K, H]``."""
        features = encoder_output.features
        _check_last_dim("resampler", "features", features, 3, self.feature_dim)
        context = self.input_proj(features.to(self.input_proj.weight.dtype))
        if self.positions:
            table = sinusoidal_positions(context.shape[1], context.shape[2], context.device)
            context = context + table.to(context.dtype)
        queries = self.queries.unsqueeze(0).expand(context.shape[0], -1, -1)
        for layer in self.layers:
            queries = layer(queries, context)
        return self.output(self.norm_out(queries))
