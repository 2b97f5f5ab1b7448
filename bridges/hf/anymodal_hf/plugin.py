"""The anymodal plugin entry point of anymodal-hf: registers the ``hf`` bridge.

Imports neither torch nor transformers: the bridge module is imported by ``load``, only when a
model is actually loaded, so ``anymodal plugins`` and friends stay fast.
"""

from __future__ import annotations

from collections.abc import Callable

import anymodal

ANYMODAL_CONTRACT = anymodal.CONTRACT_VERSION


def load(settings: anymodal.LLMSettings, device: str, dtype: str) -> anymodal.Bridge:
    """Load a Hugging Face causal LM (``settings.path``: a local directory or a hub id)."""
    from anymodal_hf.bridge import HFBridge

    return HFBridge.load(settings, device, dtype)


@anymodal.hookimpl
def register_bridges(register: Callable[..., None]) -> None:
    register(
        anymodal.BridgeSpec(
            name="hf",
            load=load,
            description="any Hugging Face causal LM through transformers, with LoRA through PEFT",
        )
    )
