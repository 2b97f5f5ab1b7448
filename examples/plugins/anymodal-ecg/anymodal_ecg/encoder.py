"""The ``ecg-cnn`` encoder: a small 1-D convolutional net over ``[batch, leads, samples]``.

* five convolutions (kernel 9; strides 2, 2, 4, 4, 4, so one output step per 256 samples, about
  one second at 250 Hz; each output sees some 2.8 s, two or three heartbeats), each followed by
  GroupNorm and GELU (no BatchNorm, so an input encodes the same alone as in any batch);
* ``features [batch, tokens, width]``: the last convolution's output average-pooled over time
  into ``tokens`` steps, in time order, then LayerNorm;
* ``pooled [batch, embed_dim]``: the mean and the maximum over time, concatenated, LayerNorm,
  then a Linear to ``embed_dim``.

Random until trained: built under ``options.seed``. Weights load as a plain state dict of this
module (``modalities.ecg.encoder.weights``, ``.safetensors``), which anymodal loads strictly;
``python -m anymodal_ecg.synthetic`` writes one, pre-trained on its synthetic rhythms.
"""

from __future__ import annotations

import anymodal
import torch
from torch import nn

from anymodal_ecg.options import EcgNetOptions

#: (output channels, stride) of the convolutions before the last, whose channels are ``width``.
STAGES = ((16, 2), (32, 2), (64, 4), (64, 4))
LAST_STRIDE = 4
KERNEL = 9


class EcgNet(nn.Module):
    """``[batch, leads, samples]`` -> ``EncoderOutput(features [batch, tokens, width], pooled
    [batch, embed_dim])``."""

    def __init__(self, options: EcgNetOptions) -> None:
        super().__init__()
        self.tokens = options.tokens
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            layers: list[nn.Module] = []
            width_in = options.leads
            for width_out, stride in (*STAGES, (options.width, LAST_STRIDE)):
                layers += [
                    nn.Conv1d(width_in, width_out, KERNEL, stride=stride, padding=KERNEL // 2),
                    nn.GroupNorm(1, width_out),
                    nn.GELU(),
                ]
                width_in = width_out
            self.convs = nn.Sequential(*layers)
            self.token_norm = nn.LayerNorm(options.width)
            self.head = nn.Sequential(
                nn.LayerNorm(2 * options.width), nn.Linear(2 * options.width, options.embed_dim)
            )
        self.geometry = anymodal.EncoderGeometry(
            feature_dim=options.width, num_tokens=options.tokens, pooled_dim=options.embed_dim
        )

    def forward(self, batch: torch.Tensor) -> anymodal.EncoderOutput:
        steps = self.convs(batch)  # [batch, width, time]
        pooled = self.head(torch.cat([steps.mean(dim=-1), steps.amax(dim=-1)], dim=-1))
        tokens = nn.functional.adaptive_avg_pool1d(steps, self.tokens).transpose(1, 2)
        return anymodal.EncoderOutput(features=self.token_norm(tokens), pooled=pooled)
