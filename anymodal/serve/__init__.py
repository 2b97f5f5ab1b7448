"""``anymodal serve``: an OpenAI-compatible HTTP API over one loaded model (FastAPI and uvicorn,
the ``serve`` extra). Requests are read into conversations (:mod:`~anymodal.serve.requests`), their
media decoded from data: URLs, allowed paths or fetched URLs (:mod:`~anymodal.serve.media`),
decoded together in one running batch (:mod:`~anymodal.serve.scheduler`) behind a bounded queue
(:mod:`~anymodal.serve.worker`) by the protocol-free :mod:`~anymodal.serve.service`, and answered
in OpenAI's shapes (:mod:`~anymodal.serve.responses`, :mod:`~anymodal.serve.errors`);
:mod:`~anymodal.serve.app` builds the FastAPI application. Importing this package imports neither
FastAPI nor torch; ``app`` imports both, ``service`` torch.

May import: contract, files, preprocess, anymodal, config, encoders, projectors, runtime, models,
scaffold, train.
"""
