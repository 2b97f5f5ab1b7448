"""Preprocessing helpers that modality plugins share (public API): bounded decoding of images and
``.npy`` arrays, sensor recordings read from ``.npy``/``.npz``/CSV/TSV/Parquet as ``[channels,
samples]`` (:func:`~anymodal.preprocess.arrays.read_array`), torchvision-equivalent image
transforms and pytorchvideo's clip sampling (without torchvision), and audio containers' declared
lengths read from their headers, so a truncated file is told from a short one. numpy, PIL and
torch load inside the functions.

May import: contract.
"""
