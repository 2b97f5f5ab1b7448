"""anymodal-video: video files as ImageBind's vision trunk sees them.

``plugin`` is the entry point (cheap to import); ``sampling`` chooses clips and frames,
``decode`` reads them with decord, ``preprocessing`` turns them into the model's tensor.
"""
