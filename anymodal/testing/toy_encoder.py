"""The toy modality's encoder: a seeded random linear map per row."""

from __future__ import annotations

import torch
from torch import nn

from anymodal.specs import EncoderGeometry, EncoderOutput
from anymodal.testing.toy import ToyEncoderOptions


class ToyEncoder(nn.Module):
    """``[batch, tokens, input_dim]`` -> features ``[batch, tokens, dim]``, pooled ``[batch, dim]``."""

    def __init__(self, options: ToyEncoderOptions) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(options.seed)
        self.proj = nn.Linear(options.input_dim, options.dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=generator) * 0.5)
            self.proj.bias.zero_()
        self.geometry = EncoderGeometry(
            feature_dim=options.dim, num_tokens=options.tokens, pooled_dim=options.dim
        )

    def forward(self, batch: torch.Tensor) -> EncoderOutput:
        features = torch.tanh(self.proj(batch))
        return EncoderOutput(features=features, pooled=features.mean(dim=1))
