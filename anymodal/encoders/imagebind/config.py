"""ImageBind's hyper-parameters: the official constructor arguments plus four geometry fields.

Torch-free on purpose: the encoder spec validates option overrides against these field names
while a config file is being checked, long before any model is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: The six trunks in the official module order (the order of the checkpoint's keys).
TRUNKS = ("vision", "text", "audio", "depth", "thermal", "imu")

#: IMU input channels (accelerometer + gyroscope, X/Y/Z); fixed by the official stem's Linear(48, D).
IMU_CHANNELS = 6


@dataclass(frozen=True)
class ImageBindConfig:
    """Every field up to ``imu_drop_path`` is an official ``ImageBindModel`` argument, with its default.

    The last four fields are not official constructor arguments: the official code hard-codes them
    (224-pixel images, CLIP's 49,408-token vocabulary and 77-token context, 2,000 IMU samples).
    They exist so tests and demos can build small models; keep the defaults to load a checkpoint.
    """

    video_frames: int = 2
    kernel_size: tuple[int, int, int] = (2, 14, 14)
    audio_kernel_size: int = 16
    audio_stride: int = 10
    out_embed_dim: int = 768
    vision_embed_dim: int = 1024
    vision_num_blocks: int = 24
    vision_num_heads: int = 16
    audio_embed_dim: int = 768
    audio_num_blocks: int = 12
    audio_num_heads: int = 12
    audio_num_mel_bins: int = 128
    audio_target_len: int = 204
    audio_drop_path: float = 0.1
    text_embed_dim: int = 768
    text_num_blocks: int = 12
    text_num_heads: int = 12
    depth_embed_dim: int = 384
    depth_kernel_size: int = 16
    depth_num_blocks: int = 12
    depth_num_heads: int = 8
    depth_drop_path: float = 0.0
    thermal_embed_dim: int = 768
    thermal_kernel_size: int = 16
    thermal_num_blocks: int = 12
    thermal_num_heads: int = 12
    thermal_drop_path: float = 0.0
    imu_embed_dim: int = 512
    imu_kernel_size: int = 8
    imu_num_blocks: int = 6
    imu_num_heads: int = 8
    imu_drop_path: float = 0.7
    # --- not official constructor arguments (hard-coded there); see the class docstring ---
    image_size: int = 224
    text_vocab_size: int = 49408
    text_context_length: int = 77
    imu_length: int = 2000

    @classmethod
    def huge(cls) -> ImageBindConfig:
        """The ``imagebind_huge`` checkpoint's configuration."""
        return IMAGEBIND_HUGE

    def replace(self, **changes: Any) -> ImageBindConfig:
        """A copy with some fields changed (``kernel_size`` may be given as a list)."""
        if "kernel_size" in changes:
            changes["kernel_size"] = tuple(changes["kernel_size"])
        return dataclasses.replace(self, **changes)

    def embed_dim(self, trunk: str) -> int:
        """Width of ``trunk``'s token sequence."""
        dim: int = getattr(self, f"{_check(trunk)}_embed_dim")
        return dim

    def num_blocks(self, trunk: str) -> int:
        blocks: int = getattr(self, f"{_check(trunk)}_num_blocks")
        return blocks

    def num_heads(self, trunk: str) -> int:
        heads: int = getattr(self, f"{_check(trunk)}_num_heads")
        return heads

    def drop_path(self, trunk: str) -> float:
        """Maximum drop-path rate; vision and text have none (the official code passes 0.0)."""
        return 0.0 if _check(trunk) in ("vision", "text") else float(getattr(self, f"{trunk}_drop_path"))

    def patch_grid(self, trunk: str) -> tuple[int, ...]:
        """The stored positional-embedding layout of ``trunk``'s patches (no CLS), e.g. (1, 16, 16)."""
        if _check(trunk) == "vision":
            frames, kernel_h, kernel_w = self.kernel_size
            return (self.video_frames // frames, self.image_size // kernel_h, self.image_size // kernel_w)
        if trunk == "audio":

            def steps(length: int) -> int:
                return (length - self.audio_kernel_size) // self.audio_stride + 1

            return (steps(self.audio_num_mel_bins), steps(self.audio_target_len))
        if trunk in ("depth", "thermal"):
            kernel: int = getattr(self, f"{trunk}_kernel_size")
            return (self.image_size // kernel, self.image_size // kernel)
        if trunk == "imu":
            return (self.imu_length // self.imu_kernel_size,)
        return (self.text_context_length,)

    def num_tokens(self, trunk: str) -> int:
        """Tokens ``trunk`` produces at the configured input size: patches plus CLS (text: context)."""
        count = 1
        for size in self.patch_grid(trunk):
            count *= size
        return count if trunk == "text" else count + 1


def _check(trunk: str) -> str:
    if trunk not in TRUNKS:
        raise ValueError(f"unknown ImageBind trunk {trunk!r}; choose one of {', '.join(TRUNKS)}")
    return trunk


IMAGEBIND_HUGE = ImageBindConfig(
    vision_embed_dim=1280,
    vision_num_blocks=32,
    vision_num_heads=16,
    text_embed_dim=1024,
    text_num_blocks=24,
    text_num_heads=16,
    out_embed_dim=1024,
    audio_drop_path=0.1,
    imu_drop_path=0.7,
)
