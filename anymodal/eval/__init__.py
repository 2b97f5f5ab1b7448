"""``anymodal eval``: conversations read into items (:mod:`~anymodal.eval.data`), replies scored
and counted (:mod:`~anymodal.eval.scoring`), a model run over them and the report written
(:mod:`~anymodal.eval.run`).

May import: contract, files, preprocess, anymodal, config, encoders, projectors, runtime, models,
scaffold, train.
"""
