"""The assembled model and everything that runs it: :mod:`~anymodal.runtime.model` (encoders and
projectors per modality, embeddings scattered into the LLM's ``inputs_embeds``), the prompt
processor and conversation templates, the chat session, embeddings for ``anymodal embed``, the
built-in plugin that registers core's own pieces, and the built-in tiny LLM.

May import: contract, files, preprocess, anymodal, config, encoders, projectors.
"""
