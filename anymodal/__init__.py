"""anymodal: any modality into a large language model.

This module is the public API: plugins and bridges import only what is listed in ``__all__``
(and ``anymodal.testing`` in their tests). It imports no torch, so importing a plugin stays cheap.
"""

from anymodal.bridge import Bridge
from anymodal.errors import (
    AnymodalError,
    ConfigError,
    InputError,
    ModelLoadError,
    PluginError,
    UsageError,
)
from anymodal.hookspecs import hookimpl
from anymodal.inputs import check_input_file
from anymodal.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    MAX_IMAGE_PIXELS,
    MAX_NPY_ELEMENTS,
    center_crop,
    clip_starts,
    load_npy,
    normalize,
    open_image,
    resize_short_side,
    to_tensor,
)
from anymodal.specs import (
    CONTRACT_VERSION,
    BridgeSpec,
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
)
from anymodal.state_dicts import load_torch_file, state_dict_mismatches

__version__ = "0.1.0"

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "CONTRACT_VERSION",
    "MAX_IMAGE_PIXELS",
    "MAX_NPY_ELEMENTS",
    "AnymodalError",
    "Bridge",
    "BridgeSpec",
    "ConfigError",
    "EncoderGeometry",
    "EncoderOutput",
    "EncoderSpec",
    "GenerationConfig",
    "InputError",
    "LLMSettings",
    "LoraSettings",
    "Message",
    "ModalitySpec",
    "ModelLoadError",
    "PluginError",
    "ProjectorSpec",
    "TemplateSpec",
    "UsageError",
    "__version__",
    "center_crop",
    "check_input_file",
    "clip_starts",
    "hookimpl",
    "load_npy",
    "load_torch_file",
    "normalize",
    "open_image",
    "resize_short_side",
    "state_dict_mismatches",
    "to_tensor",
]
