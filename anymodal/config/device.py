"""Turn ``model.device`` and ``model.dtype`` into concrete choices for this machine.

torch is imported inside the functions only: a config is loaded and validated before anything
heavy, and :func:`device_name_problem` (used at validation time) needs no torch at all.

dtype rules: ``auto`` is bfloat16 on a CUDA GPU that supports it and float32 everywhere else.
An explicit bfloat16 or float16 is honoured on CPU too: bfloat16 runs well on recent CPUs and
halves memory; float16 works but many CPU kernels are slow or missing in half precision, so
prefer bfloat16 or float32 there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from anymodal.contract.errors import UsageError
from anymodal.contract.wording import did_you_mean

DTYPES = ("float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_KNOWN_DEVICES = ("auto", "cpu", "cuda", "mps")


def device_name_problem(name: str) -> str | None:
    """Why ``name`` is not a device anymodal understands, or None when it is fine (no torch)."""
    if _DEVICE.match(name):
        return None
    return f"{name!r} is not a device{did_you_mean(name, _KNOWN_DEVICES)}; use auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str, key: str = "model.device") -> str:
    """``auto`` becomes ``cuda`` when a CUDA GPU is usable, else ``cpu``; others are checked.
    ``key`` is the config key errors name."""
    problem = device_name_problem(name)
    if problem:
        raise UsageError(f"{key}: {problem}", hint=f"set {key}=auto")
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"{key} is {name!r} but CUDA is not available here "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})",
                hint=f"run on CPU with {key}=cpu, or {key}=auto to pick the GPU when present",
            )
        index = int(name.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise UsageError(
                f"{key} is {name!r} but this machine has {count} CUDA device(s)",
                hint=f"use {key}=cuda:0 ... cuda:{count - 1}",
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{key} is 'mps' but Apple MPS is not available", hint=f"set {key}=cpu")
    return name


def resolve_dtype(name: str, device: str) -> str:
    """The torch dtype name to load weights in on ``device`` (a resolved device name)."""
    if name != "auto" and name not in DTYPES:
        raise UsageError(
            f"model.dtype: {name!r} is not one of auto, {', '.join(DTYPES)}{did_you_mean(name, DTYPES)}",
            hint="set model.dtype=auto",
        )
    on_cuda = device.startswith("cuda")
    if name == "auto":
        return "bfloat16" if on_cuda and _cuda_bf16() else "float32"
    if name == "bfloat16" and on_cuda and not _cuda_bf16():
        raise UsageError(
            "model.dtype is bfloat16 but this GPU does not support it",
            hint="set model.dtype=float16 (or float32)",
        )
    return name


def _cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


@dataclass(frozen=True)
class Placement:
    """Where a model's parts run, and in which dtype: the LLM and projectors, and the encoders."""

    device: str
    dtype: str
    encoder_device: str
    encoder_dtype: str


def resolve_placement(device: str, dtype: str, encoder_device: str) -> Placement:
    """``model.device``, ``model.dtype`` and ``model.encoder_device`` resolved ("auto" included)."""
    resolved = resolve_device(device)
    chosen = resolve_dtype(dtype, resolved)
    if encoder_device == "auto":
        return Placement(resolved, chosen, resolved, chosen)
    encoders = resolve_device(encoder_device, "model.encoder_device")
    return Placement(resolved, chosen, encoders, resolve_dtype(dtype, encoders))
