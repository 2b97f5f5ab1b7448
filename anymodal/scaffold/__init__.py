"""``anymodal new-plugin``: a modality plugin distribution written from ``template/`` (entry
point, loader, example encoder, tests wired to the conformance suite, README).

May import: contract, files, preprocess, anymodal, config, encoders, projectors, runtime.
"""
