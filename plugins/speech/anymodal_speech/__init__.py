"""anymodal-speech: speech input through OpenAI Whisper's audio encoder.

Importing this package is cheap: torch, numpy, decord and whisper are imported by the modules that
use them (``decode``, ``frontend``, ``checkpoint``, ``encoder``), never by ``plugin``.
"""

__version__ = "0.1.0"
