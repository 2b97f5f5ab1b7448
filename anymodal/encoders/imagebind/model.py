"""The ImageBind model: per-trunk preprocessor -> transformer trunk -> head -> post-processor.

Module names reproduce the official checkpoint's state-dict keys exactly, so an official
``imagebind_huge.pth`` loads strictly. Only the requested trunks are built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import torch
from torch import nn

from anymodal.encoders.imagebind.config import TRUNKS, ImageBindConfig
from anymodal.encoders.imagebind.layers import EndOfTextHead, Trunk, postprocessor, token_head
from anymodal.encoders.imagebind.preprocessors import build_preprocessor

#: Multi-clip rule of the official forward: an input with this many dimensions or more is
#: ``[batch, clips, ...]``; clips are encoded separately and their results averaged.
MULTI_CLIP_NDIM = 5


class ImageBindEncoding(NamedTuple):
    """One trunk's outputs for a batch (clip-averaged when the input had clips).

    tokens:    ``[batch, tokens, embed_dim]``, the trunk output before the head.
    pooled:    ``[batch, out_embed_dim]``, the head output before post-processing.
    embedding: ``[batch, out_embed_dim]``, the post-processed (normalised, scaled) embedding.
    """

    tokens: torch.Tensor
    pooled: torch.Tensor
    embedding: torch.Tensor


class ImageBind(nn.Module):
    """ImageBind with the trunks in ``modalities`` (official names; all six when None).

    Built under ``torch.device("meta")`` it allocates nothing (for loading a checkpoint into);
    otherwise it is randomly initialised in one pass (see :meth:`init_weights`).
    """

    def __init__(self, config: ImageBindConfig, modalities: Iterable[str] | None = None) -> None:
        super().__init__()
        wanted = set(TRUNKS if modalities is None else modalities)
        unknown = sorted(wanted - set(TRUNKS))
        if unknown:
            raise ValueError(f"unknown ImageBind modality {unknown[0]!r}; choose from {', '.join(TRUNKS)}")
        self.config = config
        self.modalities = tuple(name for name in TRUNKS if name in wanted)
        target = torch.empty(0).device  # the default device, or the one of an enclosing device context
        # Modules initialise themselves when constructed, and the huge trunks would then be filled
        # twice (the layer defaults, then the official init); building on meta skips the first.
        with torch.device("meta"):
            self.modality_preprocessors = nn.ModuleDict(
                {name: build_preprocessor(config, name) for name in self.modalities}
            )
            self.modality_trunks = nn.ModuleDict({name: self._trunk(name) for name in self.modalities})
            self.modality_heads = nn.ModuleDict({name: self._head(name) for name in self.modalities})
            self.modality_postprocessors = nn.ModuleDict(
                {name: postprocessor(name) for name in self.modalities}
            )
        if target.type != "meta":
            self.to_empty(device=target)
            self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Random values as the official training init (trunk Linears xavier-uniform with zero bias,
        the "jax" style), and the fixed buffers (causal mask, logit scales). Loading replaces them."""
        trunk_linears = {
            id(module)
            for trunk in self.modality_trunks.values()
            for module in trunk.modules()
            if isinstance(module, nn.Linear)
        }
        # Children before parents, so a parent's own init (e.g. the token embedding's std) wins.
        for module in reversed(list(self.modules())):
            if isinstance(module, nn.Linear) and id(module) in trunk_linears:
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif module is not self:
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()

    def _trunk(self, name: str) -> Trunk:
        config = self.config
        return Trunk(
            config.embed_dim(name),
            config.num_blocks(name),
            config.num_heads(name),
            pre_ln=name == "vision",  # CLIP's ln_pre
            add_bias_kv=name not in ("vision", "text"),
            drop_path=config.drop_path(name),
        )

    def _head(self, name: str) -> nn.Module:
        dim, out = self.config.embed_dim(name), self.config.out_embed_dim
        if name == "text":
            return EndOfTextHead(dim, out)
        return token_head(dim, out, dropout=0.5 if name == "imu" else None)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The official forward: ``{modality: input}`` -> ``{modality: embedding [batch, out_dim]}``.

        Inputs: vision ``[B, 3, H, W]`` (image) or ``[B, S, 3, T, H, W]`` (video clips), text
        ``[B, 77]`` token ids, audio ``[B, S, 1, 128, 204]``, depth/thermal ``[B, 1, H, W]``, imu
        ``[B, 6, 2000]``. Clip averages are not re-normalised.
        """
        return {name: self.encode(name, value).embedding for name, value in inputs.items()}

    def encode(self, modality: str, inputs: torch.Tensor, normalize_only: bool = False) -> ImageBindEncoding:
        """Tokens, pooled vector and embedding of one trunk; clip inputs (ndim >= 5) are averaged.

        normalize_only: the embedding is only L2-normalised, without the logit scale (what
        PandaGPT's copy of ImageBind does for audio).
        """
        if modality not in self.modalities:
            built = ", ".join(self.modalities)
            raise ValueError(f"this ImageBind was built without the {modality} trunk (it has: {built})")
        if inputs.ndim < MULTI_CLIP_NDIM:
            return self._encode_flat(modality, inputs, normalize_only)
        batch, clips = inputs.shape[:2]
        flat = self._encode_flat(modality, inputs.reshape(batch * clips, *inputs.shape[2:]), normalize_only)
        return ImageBindEncoding(*(part.reshape(batch, clips, *part.shape[1:]).mean(dim=1) for part in flat))

    def _encode_flat(self, modality: str, inputs: torch.Tensor, normalize_only: bool) -> ImageBindEncoding:
        preprocessor = self.modality_preprocessors[modality]
        tokens = preprocessor(inputs)
        if modality == "text":
            tokens = self.modality_trunks[modality](tokens, attn_mask=preprocessor.mask)
            # EOT (49407) is the largest id, so argmax finds it; that is how the official code does it.
            pooled = self.modality_heads[modality](tokens, eot_index=inputs.argmax(dim=-1))
        else:
            tokens = self.modality_trunks[modality](tokens)
            pooled = self.modality_heads[modality](tokens)
        postprocessor = self.modality_postprocessors[modality]
        if normalize_only and isinstance(postprocessor, nn.Sequential):
            postprocessor = postprocessor[0]
        return ImageBindEncoding(tokens, pooled, postprocessor(pooled))
