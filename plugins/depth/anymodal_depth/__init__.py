"""anymodal-depth: the ``depth`` modality (depth maps as ImageBind disparity)."""
