"""The ``imagebind`` encoder spec and its options. Torch-free: the model is built lazily in ``build``."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from anymodal.contract.errors import UsageError
from anymodal.contract.specs import EncoderSpec, TensorLayout
from anymodal.contract.wording import did_you_mean
from anymodal.encoders.imagebind.config import IMAGEBIND_HUGE, IMU_CHANNELS, TRUNKS, ImageBindConfig

if TYPE_CHECKING:
    from anymodal.encoders.imagebind.encoder import ImageBindEncoder

PRESETS = {"huge": IMAGEBIND_HUGE}

#: The ImageBind trunk each anymodal modality uses by default (video clips go through vision).
MODALITY_TRUNKS = {
    "image": "vision",
    "video": "vision",
    "text": "text",
    "audio": "audio",
    "depth": "depth",
    "thermal": "thermal",
    "imu": "imu",
}


@dataclass
class ImageBindOptions:
    """Options of the ``imagebind`` encoder (``modalities.<name>.encoder.options``).

    preset:      the base configuration; "huge" is the released ``imagebind_huge`` checkpoint.
    config:      overrides of :class:`ImageBindConfig` fields (small test models, other sizes).
    trunk:       which ImageBind trunk encodes this modality; None picks it from the modality name.
    postprocess: True: L2-normalise and apply the official logit scale; "normalize": L2 only
                 (PandaGPT's audio); False: the head output as is.
    """

    preset: str = "huge"
    config: dict[str, Any] = field(default_factory=dict)
    trunk: str | None = None
    postprocess: bool | Literal["normalize"] = True

    def __post_init__(self) -> None:
        self.image_bind_config()  # fail at config time, not when the model is built
        if self.trunk is not None and self.trunk not in TRUNKS:
            raise UsageError(
                f"unknown ImageBind trunk {self.trunk!r}{did_you_mean(self.trunk, TRUNKS)}",
                hint=f"encoder option trunk is one of {', '.join(TRUNKS)}",
            )

    def image_bind_config(self) -> ImageBindConfig:
        """The preset with the ``config`` overrides applied, validated."""
        from anymodal.config.validate import build, find_issues

        if self.preset not in PRESETS:
            raise UsageError(
                f"unknown ImageBind preset {self.preset!r}{did_you_mean(self.preset, PRESETS)}",
                hint=f"encoder option preset is one of {', '.join(PRESETS)}",
            )
        issues = find_issues(ImageBindConfig, self.config, "config")
        if issues:
            raise UsageError(
                f"ImageBind encoder options: {'; '.join(issue.text for issue in issues)}",
                hint="encoder option config takes ImageBindConfig fields, e.g. vision_embed_dim",
            )
        merged = {**dataclasses.asdict(PRESETS[self.preset]), **self.config}
        return build(ImageBindConfig, merged)

    def trunk_for(self, modality: str) -> str:
        """The trunk encoding ``modality``: ``trunk`` if set, else the modality's usual trunk."""
        trunk = self.trunk or MODALITY_TRUNKS.get(modality)
        if trunk is None:
            raise UsageError(
                f"the imagebind encoder has no default trunk for the {modality} modality",
                hint=f"set modalities.{modality}.encoder.options.trunk to one of {', '.join(TRUNKS)}",
            )
        return trunk


def build_encoder(modality: str, options: ImageBindOptions | Mapping[str, Any] | None) -> ImageBindEncoder:
    """The encoder for ``modality``: one ImageBind trunk, randomly initialised until weights load."""
    from anymodal.encoders.imagebind.encoder import ImageBindEncoder

    chosen = _options(options)
    return ImageBindEncoder(chosen.image_bind_config(), chosen.trunk_for(modality), chosen.postprocess)


def share_key(modality: str, options: ImageBindOptions | Mapping[str, Any] | None) -> Hashable:
    """Modalities on the same trunk, configuration and post-processing (image and video, say) can
    share one encoder: building it twice would hold ImageBind-huge's 633 M-parameter vision trunk twice."""
    chosen = _options(options)
    return (chosen.trunk_for(modality), chosen.image_bind_config(), repr(chosen.postprocess))


def takes(modality: str, options: ImageBindOptions | Mapping[str, Any] | None) -> TensorLayout | None:
    """What the trunk encoding ``modality`` reads, where it reads one layout only: the IMU trunk's
    ``[6, imu_length]``, its positional embedding fixing the length. The vision trunk reads images
    ``[3, H, W]`` and clips ``[clips, 3, T, H, W]``, and the others a clip dimension or not, so they
    declare none."""
    chosen = _options(options)
    if chosen.trunk_for(modality) != "imu":
        return None
    length = chosen.image_bind_config().imu_length
    return TensorLayout((IMU_CHANNELS, length), names=("channels", "samples"))


def _options(options: ImageBindOptions | Mapping[str, Any] | None) -> ImageBindOptions:
    if isinstance(options, ImageBindOptions):
        return options
    from anymodal.config.validate import build

    return build(ImageBindOptions, dict(options or {}))


IMAGEBIND_ENCODER = EncoderSpec(
    name="imagebind",
    build=build_encoder,
    options=ImageBindOptions,
    share_key=share_key,
    meta_load=True,
    takes=takes,
    description="ImageBind (huge by default): one trunk per modality, official checkpoint keys; "
    "features = trunk tokens, pooled = the post-processed embedding",
)
