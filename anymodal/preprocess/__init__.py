"""Preprocessing helpers that modality plugins share (public API): bounded decoding of images and
``.npy`` arrays, and torchvision-equivalent image transforms and pytorchvideo's clip sampling,
without torchvision. numpy, PIL and torch load inside the functions.

May import: contract.
"""
