"""ImageBind's modality preprocessors: stem (patch embedding), CLS token and positional embedding.

Each turns one modality's input into the trunk's token sequence ``[batch, tokens, dim]``. Attribute
names follow the official checkpoint (``rgbt_stem``, ``depth_stem``, ``imu_stem``, ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from anymodal.encoders.imagebind.config import IMU_CHANNELS, ImageBindConfig

STEM_LN_EPS = 1e-5  # the stems use nn.LayerNorm's default, unlike the trunks
VISION_TIME_STEPS = 2  # PadIm2Video repeats a still image to this many frames (hard-coded officially)


class PadIm2Video(nn.Module):
    """``[B, C, H, W]`` or ``[B, C, 1, H, W]`` -> ``[B, C, 2, H, W]`` by repeating the frame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.shape[2] == 1:
            x = x.repeat(1, 1, VISION_TIME_STEPS, 1, 1)
        return x


class PatchEmbed(nn.Module):
    """``proj`` (a conv, or PadIm2Video + conv, or a Linear), flattened row-major, then ``norm_layer``."""

    def __init__(self, proj: nn.Module, norm_dim: int | None) -> None:
        super().__init__()
        self.proj = proj
        self.norm_layer = nn.LayerNorm(norm_dim, eps=STEM_LN_EPS) if norm_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: the modality's input -> ``[batch, patches, dim]``."""
        x = self.proj(x)
        if x.ndim > 3:  # conv output [B, D, (T,) H, W]; a Linear already gives [B, patches, D]
            x = x.flatten(2).transpose(1, 2)
        return self.norm_layer(x) if self.norm_layer is not None else x


class PosEmbedding(nn.Module):
    """Holds ``pos_embed [1, 1 + patches, dim]`` and resizes it when the patch count differs."""

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, num_tokens, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, num_patches: int) -> torch.Tensor:
        return interpolate_pos_embed(self.pos_embed, num_patches)


def interpolate_pos_embed(pos_embed: torch.Tensor, num_patches: int) -> torch.Tensor:
    """``[1, 1 + N, D]`` -> ``[1, 1 + num_patches, D]``: the patch part resized bicubically as a square
    2-D grid, the CLS slot kept. Unchanged when the counts agree (the usual case).

    bf16 cannot be interpolated bicubically everywhere, so it goes through float32 as officially.
    """
    stored = pos_embed.shape[1] - 1
    if stored == num_patches:
        return pos_embed
    side, new_side = math.isqrt(stored), math.isqrt(num_patches)
    if side * side != stored or new_side * new_side != num_patches:
        raise ValueError(
            f"cannot resize a positional embedding of {stored} patches to {num_patches}: "
            "only square patch grids can be interpolated; give inputs of the configured size"
        )
    cls_slot, patches = pos_embed[:, :1], pos_embed[:, 1:]
    dtype = patches.dtype
    grid = patches.float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False)
    patches = grid.permute(0, 2, 3, 1).reshape(1, num_patches, -1).to(dtype)
    return torch.cat([cls_slot, patches], dim=1)


class PatchPreprocessor(nn.Module):
    """Vision, audio, depth and thermal: stem -> prepend CLS -> add the positional embedding."""

    def __init__(self, stem_name: str, stem: PatchEmbed, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.stem_name = stem_name
        self.add_module(stem_name, stem)
        self.pos_embedding_helper = PosEmbedding(num_tokens, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``[B, C, H, W]`` (or ``[B, C, T, H, W]`` video) -> ``[B, 1 + patches, dim]``."""
        patches = getattr(self, self.stem_name)(x)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        tokens = torch.cat([cls, patches], dim=1)
        return tokens + self.pos_embedding_helper(patches.shape[1])


class TextPreprocessor(nn.Module):
    """Token embedding plus ``pos_embed``; holds the additive causal ``mask`` buffer. No CLS token."""

    mask: torch.Tensor

    def __init__(self, vocab_size: int, context_length: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, context_length, dim))
        self.register_buffer("mask", torch.empty(context_length, context_length))
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.pos_embed, std=0.01)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        with torch.no_grad():  # additive causal mask: -inf strictly above the diagonal
            self.mask.fill_(float("-inf")).triu_(1)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids: ``[batch, context]`` int -> ``[batch, context, dim]``."""
        return self.token_embedding(token_ids) + self.pos_embed


class ImuPreprocessor(nn.Module):
    """``[B, 6, samples]`` -> windows of ``kernel`` samples, each 6x``kernel`` features (channel-major)
    -> Linear -> LayerNorm, then CLS and ``pos_embed`` (a raw parameter, never interpolated)."""

    def __init__(self, kernel: int, num_windows: int, dim: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.pos_embed = nn.Parameter(torch.empty(1, num_windows + 1, dim))
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.imu_stem = PatchEmbed(nn.Linear(IMU_CHANNELS * kernel, dim, bias=False), dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.pos_embed, std=0.01)
        nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, imu: torch.Tensor) -> torch.Tensor:
        """imu: ``[batch, 6, samples]`` -> ``[batch, 1 + samples // kernel, dim]``."""
        windows = imu.unfold(-1, self.kernel, self.kernel).permute(0, 2, 1, 3)  # [B, W, 6, kernel]
        patches = self.imu_stem(windows.reshape(windows.shape[0], windows.shape[1], -1))
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.pos_embed


def build_preprocessor(config: ImageBindConfig, trunk: str) -> nn.Module:
    """The official preprocessor of ``trunk`` for ``config``."""
    dim, tokens = config.embed_dim(trunk), config.num_tokens(trunk)
    if trunk == "vision":
        conv3d = nn.Conv3d(3, dim, kernel_size=config.kernel_size, stride=config.kernel_size, bias=False)
        return PatchPreprocessor(
            "rgbt_stem", PatchEmbed(nn.Sequential(PadIm2Video(), conv3d), None), tokens, dim
        )
    if trunk == "text":
        return TextPreprocessor(config.text_vocab_size, config.text_context_length, dim)
    if trunk == "imu":
        return ImuPreprocessor(config.imu_kernel_size, tokens - 1, dim)
    if trunk == "audio":
        kernel, stride = config.audio_kernel_size, config.audio_stride
    else:
        kernel = stride = getattr(config, f"{trunk}_kernel_size")
    conv = nn.Conv2d(1, dim, kernel_size=kernel, stride=stride, bias=False)
    stem_name = "depth_stem" if trunk == "depth" else "rgbt_stem"
    return PatchPreprocessor(stem_name, PatchEmbed(conv, dim), tokens, dim)
