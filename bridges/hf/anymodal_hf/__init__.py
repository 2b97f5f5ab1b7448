"""anymodal-hf: the Hugging Face transformers (+ PEFT) LLM bridge for anymodal.

Importing this package is cheap; torch and transformers load with the bridge itself
(``anymodal_hf.bridge``), when a model is loaded.
"""

__version__ = "0.1.0"
