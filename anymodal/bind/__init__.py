"""``anymodal bind``: an encoder trained so that its pooled embeddings land in another modality's
embedding space, with ImageBind's objective, from paired samples alone. The pairs are read and
split (:mod:`~anymodal.bind.data`), the frozen target's embeddings computed once
(:mod:`~anymodal.bind.targets`), and the encoder trained with a symmetric InfoNCE and scored by
cross-modal retrieval (:mod:`~anymodal.bind.objective`) on the training loop
(:mod:`~anymodal.bind.binder`).

May import: contract, files, preprocess, anymodal, config, encoders, projectors, runtime, models,
scaffold, train.
"""
