"""The instruction trainer behind ``anymodal train``: data, tokenisation, feature cache, loop, checkpoints.

May import: contract, files, preprocess, anymodal, config, encoders, projectors, runtime.
"""
