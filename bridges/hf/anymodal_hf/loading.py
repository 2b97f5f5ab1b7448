"""Loading a Hugging Face causal LM, its tokenizer and an optional PEFT adapter, with errors a user
can act on: every common failure (missing directory, no config.json, unknown architecture, corrupt
weights, unreachable hub) becomes one line naming the path and the fix, never a deep traceback.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import transformers
from packaging.version import Version

import anymodal

# A chat prints its reply on stdout and one-line notices on stderr; per-shard progress bars for
# small local models are noise there.
transformers.utils.logging.disable_progress_bar()

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: transformers 4.56 renamed from_pretrained's ``torch_dtype`` to ``dtype``.
_DTYPE_KWARG = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


@dataclass(frozen=True)
class HFOptions:
    """``model.llm.options`` for the hf bridge."""

    #: Run modelling code shipped inside the model directory (needed by some architectures).
    trust_remote_code: bool = False
    #: A branch, tag or commit of a hub model.
    revision: str | None = None
    #: "sdpa", "eager", "flash_attention_2", ...; None lets transformers choose.
    attn_implementation: str | None = None
    #: "8bit" or "4bit" (NF4): the LLM's linear layers quantized by bitsandbytes on a CUDA GPU.
    quantization: str | None = None


_OPTION_TYPES: dict[str, type] = {
    "trust_remote_code": bool,
    "revision": str,
    "attn_implementation": str,
    "quantization": str,
}
QUANTIZATIONS = ("8bit", "4bit")


def parse_options(options: Mapping[str, Any]) -> HFOptions:
    """Validate ``model.llm.options``; an unknown key or a wrong type is a UsageError naming it."""
    valid = ", ".join(sorted(_OPTION_TYPES))
    for key, value in options.items():
        expected = _OPTION_TYPES.get(key)
        if expected is None:
            close = difflib.get_close_matches(key, list(_OPTION_TYPES), n=1, cutoff=0.6)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            raise anymodal.UsageError(
                f"unknown hf bridge option model.llm.options.{key}{suggestion}",
                hint=f"valid keys: {valid}",
            )
        if value is not None and not isinstance(value, expected):
            raise anymodal.UsageError(
                f"model.llm.options.{key} must be a {expected.__name__}, got {value!r}",
                hint=f"set model.llm.options.{key} to a {expected.__name__}",
            )
    quantization = options.get("quantization")
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise anymodal.UsageError(
            f"model.llm.options.quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}",
            hint="8bit halves the LLM's memory, 4bit (NF4) quarters it; null keeps full precision",
        )
    return HFOptions(**{key: value for key, value in options.items() if value is not None})


def quantization_config(quantization: str, dtype: torch.dtype, device: torch.device) -> Any:
    """transformers' BitsAndBytesConfig for ``quantization``; a clear error where it cannot work."""
    key = f"model.llm.options.quantization={quantization}"
    if device.type != "cuda":
        raise anymodal.UsageError(
            f"{key} needs a CUDA GPU, and the model runs on {device}",
            hint="run on a GPU (model.device=cuda), or remove model.llm.options.quantization",
        )
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise anymodal.UsageError(
            f"{key} needs bitsandbytes, which is not installed",
            hint="anymodal install bitsandbytes, or remove model.llm.options.quantization",
        )
    if quantization == "8bit":
        return transformers.BitsAndBytesConfig(load_in_8bit=True)
    return transformers.BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise anymodal.UsageError(f"unknown dtype {dtype!r}", hint=f"use one of: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def check_device(device: str) -> torch.device:
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise anymodal.UsageError(
            f"invalid device {device!r}: {_first_line(error)}", hint="use cpu, cuda or cuda:N"
        ) from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise anymodal.UsageError(
                f"device {device!r} was requested but CUDA is not available", hint="set model.device=cpu"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise anymodal.UsageError(
                f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible",
                hint="pick an index below the device count",
            )
    return resolved


@dataclass(frozen=True)
class Source:
    """Where from_pretrained reads: a local directory, or a hub id (``local_only``: from the cache)."""

    location: str
    local_only: bool


def resolve_source(path: str, options: HFOptions) -> Source:
    """Check ``path`` before transformers sees it, so that the common mistakes get a clear error."""
    local = Path(path).expanduser()
    if local.exists():
        if not local.is_dir():
            raise anymodal.ModelLoadError(
                f"LLM path is a file, not a model directory: {local}",
                hint="set model.llm.path to the directory that holds config.json",
            )
        if not (local / "config.json").is_file():
            raise anymodal.ModelLoadError(
                f"{local} has no config.json, so it is not a Hugging Face model directory",
                hint="set model.llm.path to a directory written by save_pretrained "
                "(config.json, weights and tokenizer files)",
            )
        return Source(str(local), local_only=True)
    if not _HUB_ID.match(path) or ".." in path:
        raise anymodal.ModelLoadError(
            f"LLM directory not found: {local}",
            hint="check model.llm.path (a local model directory or a hub id)",
        )
    if _in_hub_cache(path, options):
        return Source(path, local_only=True)
    if not _hub_reachable():
        raise anymodal.ModelLoadError(
            f"{path!r} is neither a local directory nor in the hub cache, and the Hugging Face hub "
            "cannot be reached",
            hint=f"on a machine with network run `huggingface-cli download {path} --local-dir DIR`, "
            "copy DIR here and set model.llm.path=DIR",
        )
    return Source(path, local_only=False)


def load_config(source: Source, options: HFOptions) -> Any:
    try:
        return transformers.AutoConfig.from_pretrained(source.location, **_common_kwargs(source, options))
    except json.JSONDecodeError as error:
        raise anymodal.ModelLoadError(
            f"config.json of {source.location} is not valid JSON: {error}",
            hint="re-download or re-save the model",
        ) from error
    except ValueError as error:
        model_type = _model_type(source.location)
        if "trust_remote_code" in str(error):
            raise anymodal.ModelLoadError(
                f"{source.location} ships its own modelling code, which is not run by default",
                hint="if you trust it, set model.llm.options.trust_remote_code=true",
            ) from error
        raise anymodal.ModelLoadError(
            f"unknown model architecture {model_type!r} in {source.location}: this transformers "
            f"{transformers.__version__} does not know it",
            hint="upgrade transformers, or set model.llm.options.trust_remote_code=true if the model "
            "ships its own code",
        ) from error
    except (OSError, KeyError) as error:
        raise _load_failure(source, "the model config", error) from error


def load_tokenizer(source: Source, options: HFOptions) -> Any:
    try:
        return transformers.AutoTokenizer.from_pretrained(source.location, **_common_kwargs(source, options))
    except Exception as error:
        raise _load_failure(source, "the tokenizer", error) from error


def load_model(
    source: Source, options: HFOptions, config: Any, dtype: torch.dtype, device: torch.device
) -> Any:
    kwargs = _common_kwargs(source, options)
    kwargs[_DTYPE_KWARG] = dtype
    if options.attn_implementation is not None:
        kwargs["attn_implementation"] = options.attn_implementation
    if options.quantization is not None:
        kwargs["quantization_config"] = quantization_config(options.quantization, dtype, device)
    if device.type != "cpu":
        # Straight onto the accelerator, without a full copy in host memory first.
        kwargs["device_map"] = {"": device}
    model: Any
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(source.location, config=config, **kwargs)
    except ValueError as error:
        if "Unrecognized configuration class" in str(error):
            raise anymodal.ModelLoadError(
                f"{source.location} holds a {_model_type(source.location)!r} model, which is not a causal "
                "language model",
                hint="set model.llm.path to a decoder-only (causal) LM",
            ) from error
        raise _load_failure(source, "the LLM weights", error) from error
    except Exception as error:
        raise _load_failure(source, "the LLM weights", error) from error
    return model.to(device) if device.type == "cpu" else model


def load_adapter(model: Any, adapter: str) -> Any:
    """Wrap ``model`` in the PEFT adapter stored in the directory ``adapter`` (frozen, for inference).

    The adapter's weights take the model's dtype: PEFT's default (``autocast_adapter_dtype``)
    would upcast them to float32 in a float16 or bfloat16 model, which changes its logits (PandaGPT
    runs its LoRA in float16 with the rest). Training it further upcasts it then
    (:func:`anymodal_hf.lora.train_loaded_adapter`).
    """
    from peft import PeftModel

    from anymodal_hf.lora import quiet_peft_deprecations

    directory = Path(adapter).expanduser()
    if not directory.is_dir():
        raise anymodal.ModelLoadError(
            f"LoRA adapter directory not found: {directory}",
            hint="set model.llm.adapter to a directory holding adapter_config.json, or remove it",
        )
    if not (directory / "adapter_config.json").is_file():
        raise anymodal.ModelLoadError(
            f"{directory} has no adapter_config.json, so it is not a PEFT adapter directory",
            hint="set model.llm.adapter to a directory written by `anymodal train` or PEFT's save_pretrained",
        )
    try:
        with quiet_peft_deprecations():
            return PeftModel.from_pretrained(model, str(directory), autocast_adapter_dtype=False)
    except Exception as error:
        raise anymodal.ModelLoadError(
            f"could not load the LoRA adapter {directory}: {_first_line(error)}",
            hint="check that the adapter was trained on this LLM (model.llm.path)",
        ) from error


def _common_kwargs(source: Source, options: HFOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"trust_remote_code": options.trust_remote_code}
    if options.revision is not None:
        kwargs["revision"] = options.revision
    if source.local_only:
        kwargs["local_files_only"] = True
    return kwargs


def _load_failure(source: Source, what: str, error: BaseException) -> anymodal.ModelLoadError:
    return anymodal.ModelLoadError(
        f"could not load {what} from {source.location}: {type(error).__name__}: {_first_line(error)}",
        hint="the files may be corrupt or incomplete; re-download or re-save the model",
    )


def _first_line(error: BaseException, limit: int = 300) -> str:
    """The error's message on one line, shortened: transformers' messages run to paragraphs."""
    line = " ".join(str(error).split()) or repr(error)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _model_type(location: str) -> str | None:
    try:
        data = json.loads((Path(location) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data.get("model_type") if isinstance(data, dict) else None


def _in_hub_cache(repo_id: str, options: HFOptions) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return False
    found = try_to_load_from_cache(repo_id, "config.json", revision=options.revision)
    return isinstance(found, str)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers, decided in seconds rather than after a minute of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # through a proxy only a real request can tell
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
