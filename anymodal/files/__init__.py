"""Files read and written safely: input files checked before a plugin decodes them, weight files
(torch checkpoints, safetensors) read and compared with a module's state dict, outputs written
whole or not at all, SHA-256 digests, output directories that are never overwritten.

May import: contract.
"""
