"""ImageBind's transformer trunk, heads and post-processors, named so state-dict keys are official.

Everything runs batch-first (``[batch, tokens, dim]``); the official trunk is sequence-first, which
changes no result (attention and LayerNorm do not care) except where drop path draws its mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TRUNK_LN_EPS = 1e-6  # trunk blocks, the vision pre-trunk LayerNorm and the heads (CLIP's value)
MAX_LOGIT_SCALE = 100.0


class DropPath(nn.Module):
    """Stochastic depth, active in training only.

    The official trunk applies timm's per-sample drop path to a sequence-first tensor, so its mask
    is drawn per token position and shared across the batch; this keeps that behaviour.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[batch, tokens, dim]``."""
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((1, x.shape[1], 1)).bernoulli_(keep)
        return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names and semantics.

    ``in_proj_weight [3D, D]`` packs the q, k, v projections (row blocks in that order). With
    ``add_bias_kv`` a learned key and value are appended after the projection, so every query
    attends over ``tokens + 1`` keys; an attention mask then gets a zero column for them.
    """

    def __init__(self, dim: int, num_heads: int, add_bias_kv: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.bias_k: nn.Parameter | None = None
        self.bias_v: nn.Parameter | None = None
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, dim))
            self.bias_v = nn.Parameter(torch.empty(1, 1, dim))
        self.out_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        if self.bias_k is not None and self.bias_v is not None:
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: ``[batch, tokens, dim]``; attn_mask: additive ``[tokens, tokens]`` or None."""
        batch, length, dim = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        if self.bias_k is not None and self.bias_v is not None:
            k = torch.cat([k, self.bias_k.to(k.dtype).expand(batch, 1, dim)], dim=1)
            v = torch.cat([v, self.bias_v.to(v.dtype).expand(batch, 1, dim)], dim=1)
            if attn_mask is not None:
                attn_mask = F.pad(attn_mask, (0, 1))
        if attn_mask is not None:
            # A float mask must match the query dtype in SDPA; -inf survives the cast to bf16/fp16.
            attn_mask = attn_mask.to(device=q.device, dtype=q.dtype)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, t.shape[1], self.num_heads, dim // self.num_heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=attn_mask)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf form, as the official trunk
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LayerNorm residual block: attention then a 4x MLP, each behind drop path."""

    def __init__(self, dim: int, num_heads: int, add_bias_kv: bool, drop_path: float) -> None:
        super().__init__()
        self.attn = Attention(dim, num_heads, add_bias_kv)
        self.drop_path = DropPath(drop_path)
        self.norm_1 = nn.LayerNorm(dim, eps=TRUNK_LN_EPS)
        self.mlp = Mlp(dim, 4 * dim)
        self.norm_2 = nn.LayerNorm(dim, eps=TRUNK_LN_EPS)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm_1(x), attn_mask))
        return x + self.drop_path(self.mlp(self.norm_2(x)))


class Trunk(nn.Module):
    """The official ``SimpleTransformer``: optional pre-trunk LayerNorm (vision) and ``blocks``.

    ``pre_transformer_layer`` is a Sequential so the vision LayerNorm's keys are ``...layer.0.*``.
    """

    def __init__(
        self, dim: int, num_blocks: int, num_heads: int, *, pre_ln: bool, add_bias_kv: bool, drop_path: float
    ) -> None:
        super().__init__()
        first: nn.Module = nn.LayerNorm(dim, eps=TRUNK_LN_EPS) if pre_ln else nn.Identity()
        self.pre_transformer_layer = nn.Sequential(first)
        rates = torch.linspace(0.0, drop_path, num_blocks, device="cpu").tolist()
        self.blocks = nn.Sequential(*(Block(dim, num_heads, add_bias_kv, rate) for rate in rates))

    def forward(self, tokens: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """tokens: ``[batch, tokens, dim]`` -> ``[batch, tokens, dim]``."""
        x = self.pre_transformer_layer(tokens)
        for block in self.blocks:
            x = block(x, attn_mask)
        return x


class SelectToken(nn.Module):
    """Picks one token (the CLS token at index 0): ``[batch, tokens, dim]`` -> ``[batch, dim]``."""

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.index, :]


def token_head(dim: int, out_dim: int, dropout: float | None = None) -> nn.Sequential:
    """LayerNorm -> CLS -> [Dropout] -> Linear: keys ``0.*`` and ``2.weight`` (``3.weight`` with dropout)."""
    layers: list[nn.Module] = [nn.LayerNorm(dim, eps=TRUNK_LN_EPS), SelectToken(0)]
    if dropout is not None:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(dim, out_dim, bias=False))
    return nn.Sequential(*layers)


class EndOfTextHead(nn.Module):
    """Text head: select each row's EOT token, then LayerNorm -> Linear (keys ``proj.0``, ``proj.1``)."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim, eps=TRUNK_LN_EPS), nn.Linear(dim, out_dim, bias=False))

    def forward(self, x: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """x: ``[batch, tokens, dim]``, eot_index: ``[batch]`` -> ``[batch, out_dim]``."""
        rows = torch.arange(x.shape[0], device=x.device)
        return self.proj(x[rows, eot_index])


class Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1, p=2)


class LogitScale(nn.Module):
    """Multiply by ``min(exp(log_logit_scale), 100)``; a 0-d parameter if learnable, else a buffer."""

    log_logit_scale: torch.Tensor

    def __init__(self, scale: float, learnable: bool) -> None:
        super().__init__()
        self.scale = scale
        value = torch.empty(())
        if learnable:
            self.log_logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_logit_scale", value)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.log_logit_scale.fill_(math.log(self.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.log_logit_scale.exp(), max=MAX_LOGIT_SCALE) * x


def postprocessor(trunk: str) -> nn.Module:
    """L2 normalisation, then the trunk's logit scale (``.1.log_logit_scale``) where it has one."""
    if trunk == "vision":
        return Normalize()
    scale, learnable = {
        "text": (1 / 0.07, True),
        "audio": (20.0, False),
        "depth": (5.0, False),
        "thermal": (10.0, False),
        "imu": (5.0, False),
    }[trunk]
    return nn.Sequential(Normalize(), LogitScale(scale, learnable))
