"""anymodal-thermal: the ``thermal`` modality (PandaGPT's thermal preprocessing)."""
