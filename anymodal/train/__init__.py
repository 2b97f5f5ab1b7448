"""The instruction trainer behind ``anymodal train``: data, tokenisation, feature cache, loop, checkpoints."""
