"""anymodal-audio: audio files and the audio track of videos, preprocessed as ImageBind does.

Importing this package is cheap: torch, numpy, soundfile and decord are imported by the modules
that use them (``fbank``, ``resample``, ``decode``, ``preprocessing``), never by ``plugin``.
"""

__version__ = "0.1.0"
