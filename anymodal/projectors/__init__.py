"""Core projectors from encoder outputs into the LLM's token-embedding space: ``linear``
(PandaGPT's, the pooled vector to one token), ``mlp`` (LLaVA-1.5's) and ``resampler`` (K learned
queries). :mod:`~anymodal.projectors.specs` registers them without torch; the modules are in
:mod:`~anymodal.projectors.modules`.

May import: contract, files, preprocess, anymodal, config.
"""
