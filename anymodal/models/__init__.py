"""Where a model comes from and where it goes: PandaGPT's released delta converted
(:mod:`~anymodal.models.pandagpt`), released weights fetched (:mod:`~anymodal.models.pull`), a
model exported with its LoRA merged (:mod:`~anymodal.models.export`), and ``anymodal doctor``'s
report of a machine and a model's files and memory. The shipped demo model's files (``demo/``)
are package data here.

May import: contract, files, preprocess, anymodal, config, encoders, projectors, runtime.
"""
