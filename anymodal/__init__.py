"""anymodal: any modality into a large language model.

This module is the public API: plugins and bridges import only what is listed in ``__all__``
(and ``anymodal.testing`` in their tests). It imports no torch, so importing a plugin stays cheap.
"""

from anymodal.contract.benchmarks import BenchmarkItem, BenchmarkSpec
from anymodal.contract.bridge import BatchRow, Bridge, BridgeSpec, CachedReply, GenerationBatch, KVCache
from anymodal.contract.errors import (
    AnymodalError,
    ConfigError,
    InputError,
    ModelLoadError,
    PluginError,
    UsageError,
)
from anymodal.contract.hookspecs import hookimpl
from anymodal.contract.layouts import layout_mismatch
from anymodal.contract.specs import (
    CONTRACT_VERSION,
    EncoderGeometry,
    EncoderOutput,
    EncoderSpec,
    GenerationConfig,
    LLMSettings,
    LoraSettings,
    Message,
    ModalitySpec,
    ProjectorSpec,
    TemplateSpec,
    TensorLayout,
)
from anymodal.contract.version import __version__
from anymodal.files.inputs import check_input_file
from anymodal.files.weights import load_torch_file, state_dict_mismatches
from anymodal.preprocess.arrays import read_array
from anymodal.preprocess.audio_headers import (
    CODEC_FRAME_SAMPLES,
    CONTAINER_TOLERANCE_S,
    WavLayout,
    check_ogg_complete,
    checked_wav_layout,
    container_audio_seconds,
    flac_sample_rate,
    format_duration,
    mp3_declares_length,
    truncated_audio_error,
)
from anymodal.preprocess.decode import MAX_IMAGE_PIXELS, MAX_NPY_ELEMENTS, load_npy, open_image
from anymodal.preprocess.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    center_crop,
    clip_starts,
    normalize,
    resize_short_side,
    to_tensor,
)

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "CODEC_FRAME_SAMPLES",
    "CONTAINER_TOLERANCE_S",
    "CONTRACT_VERSION",
    "MAX_IMAGE_PIXELS",
    "MAX_NPY_ELEMENTS",
    "AnymodalError",
    "BatchRow",
    "BenchmarkItem",
    "BenchmarkSpec",
    "Bridge",
    "BridgeSpec",
    "CachedReply",
    "ConfigError",
    "EncoderGeometry",
    "EncoderOutput",
    "EncoderSpec",
    "GenerationBatch",
    "GenerationConfig",
    "InputError",
    "KVCache",
    "LLMSettings",
    "LoraSettings",
    "Message",
    "ModalitySpec",
    "ModelLoadError",
    "PluginError",
    "ProjectorSpec",
    "TemplateSpec",
    "TensorLayout",
    "UsageError",
    "WavLayout",
    "__version__",
    "center_crop",
    "check_input_file",
    "check_ogg_complete",
    "checked_wav_layout",
    "clip_starts",
    "container_audio_seconds",
    "flac_sample_rate",
    "format_duration",
    "hookimpl",
    "layout_mismatch",
    "load_npy",
    "load_torch_file",
    "mp3_declares_length",
    "normalize",
    "open_image",
    "read_array",
    "resize_short_side",
    "state_dict_mismatches",
    "to_tensor",
    "truncated_audio_error",
]
