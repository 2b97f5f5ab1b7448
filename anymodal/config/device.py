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

from anymodal.errors import UsageError
from anymodal.suggest import did_you_mean

DTYPES = ("float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_KNOWN_DEVICES = ("auto", "cpu", "cuda", "mps")


def device_name_problem(name: str) -> str | None:
    """Why ``name`` is not a device anymodal understands, or None when it is fine (no torch)."""
    if _DEVICE.match(name):
        return None
    return f"{name!r} is not a device{did_you_mean(name, _KNOWN_DEVICES)}; use auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str) -> str:
    """``auto`` becomes ``cuda`` when a CUDA GPU is usable, else ``cpu``; others are checked."""
    problem = device_name_problem(name)
    if problem:
        raise UsageError(f"model.device: {problem}", hint="set model.device=auto")
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"model.device is {name!r} but CUDA is not available here "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})",
                hint="run on CPU with model.device=cpu, or model.device=auto to pick the GPU when present",
            )
        index = int(name.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise UsageError(
                f"model.device is {name!r} but this machine has {count} CUDA device(s)",
                hint=f"use model.device=cuda:0 ... cuda:{count - 1}",
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("model.device is 'mps' but Apple MPS is not available", hint="set model.device=cpu")
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
