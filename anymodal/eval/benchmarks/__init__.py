"""Public benchmarks scored exactly as their official scripts score them (issue 21), one module each:
:mod:`~anymodal.eval.benchmarks.pope` so far.
"""
