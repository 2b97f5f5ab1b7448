"""One ImageBind trunk as an anymodal encoder: ``forward(batch) -> EncoderOutput``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from anymodal.contract.specs import EncoderGeometry, EncoderOutput
from anymodal.encoders.imagebind.checkpoint import load_imagebind_weights
from anymodal.encoders.imagebind.config import ImageBindConfig
from anymodal.encoders.imagebind.model import ImageBind


class ImageBindEncoder(nn.Module):
    """A single-trunk :class:`ImageBind` behind the encoder contract.

    features: the trunk's tokens ``[batch, tokens, embed_dim]``; pooled: the embedding
    ``[batch, out_embed_dim]``, post-processed per ``postprocess`` (True: L2 + the official logit
    scale; "normalize": L2 only, what PandaGPT feeds its projector for audio; False: head output).
    Clip inputs (``[batch, clips, ...]`` with ndim >= 5) are averaged over clips, both outputs.
    """

    def __init__(self, config: ImageBindConfig, trunk: str, postprocess: bool | str = True) -> None:
        super().__init__()
        self.trunk = trunk
        self.postprocess = postprocess
        self.model = ImageBind(config, [trunk])
        self.geometry = EncoderGeometry(
            feature_dim=config.embed_dim(trunk),
            num_tokens=config.num_tokens(trunk),
            pooled_dim=config.out_embed_dim,
        )

    def forward(self, batch: torch.Tensor) -> EncoderOutput:
        """batch: e.g. image ``[B, 3, 224, 224]``, video ``[B, 15, 3, 2, 224, 224]``, audio
        ``[B, 3, 1, 128, 204]``, depth/thermal ``[B, 1, 224, 224]``, imu ``[B, 6, 2000]``,
        text ``[B, 77]``."""
        encoded = self.model.encode(self.trunk, batch, normalize_only=self.postprocess == "normalize")
        return EncoderOutput(
            features=encoded.tokens, pooled=encoded.embedding if self.postprocess else encoded.pooled
        )

    def load_weights(self, path: str | Path) -> None:
        """Load this trunk's tensors from an official ImageBind checkpoint (other trunks are skipped)."""
        load_imagebind_weights(self.model, path)

    def checkpoint_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` (this module's state dict) in the official checkpoint's flat layout
        (``modality_trunks.<trunk>...``), what :meth:`load_weights` reads: how ``anymodal bind``
        writes a trained trunk."""
        return {key.removeprefix("model."): value for key, value in state.items()}
