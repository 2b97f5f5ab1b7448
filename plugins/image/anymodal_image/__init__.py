"""anymodal-image: the ``image`` modality (ImageBind's vision preprocessing)."""
