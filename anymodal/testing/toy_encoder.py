"""The toy modality's encoder: a seeded random linear map per row (its arguments are the fields of
:class:`anymodal.testing.toy.ToyEncoderOptions`)."""

from __future__ import annotations

import torch
from torch import nn

from anymodal.contract.specs import EncoderGeometry, EncoderOutput


class ToyEncoder(nn.Module):
    """``[batch, tokens, input_dim]`` -> features ``[batch, tokens, dim]``, pooled ``[batch, dim]``."""

    def __init__(self, input_dim: int = 8, dim: int = 16, tokens: int = 4, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.proj = nn.Linear(input_dim, dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=generator) * 0.5)
            self.proj.bias.zero_()
        self.geometry = EncoderGeometry(feature_dim=dim, num_tokens=tokens, pooled_dim=dim)

    def forward(self, batch: torch.Tensor) -> EncoderOutput:
        features = torch.tanh(self.proj(batch))
        return EncoderOutput(features=features, pooled=features.mean(dim=1))
