"""Preprocessing helpers shared by modality plugins (public API). Torch is imported lazily."""

from __future__ import annotations

#: CLIP's per-channel normalisation, which ImageBind's vision preprocessing uses.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
