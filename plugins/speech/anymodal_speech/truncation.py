"""A file that holds less than its header declares: the one-line error, and how much is forgiven.

Tolerances (what counts as "a partial last frame or packet", not as truncation):

* WAV: less than one block (``fmt``'s block align: one frame of PCM) of the declared data missing.
* FLAC, MP3, Ogg through soundfile: up to one codec frame of samples missing, :data:`CODEC_FRAME`
  (FLAC's largest common block, MP3's layer III frame, Vorbis's long block).
* Containers decoded by decord (mp4, m4a, mov, mkv, webm): up to :data:`CONTAINER_TOLERANCE_S`
  of the sound track's declared duration missing, which covers AAC and Opus encoder priming and
  a last packet even at 8 kHz.

Ogg declares no length at all; a complete Ogg stream ends with a page flagged end-of-stream, and a
file without one is reported by :func:`ogg_without_end`.

The same module as ``anymodal_audio.truncation`` (a plugin imports only anymodal, so the
two keep a copy each).
"""

from __future__ import annotations

from pathlib import Path

import anymodal
from anymodal_speech.durations import format_durations

#: The word that starts every message: this plugin's modality.
NOUN = "speech"
HINT = "the file was cut short (an interrupted download or copy); re-export or re-download it"

#: Samples of one codec frame forgiven at the end, by libsndfile's major format name.
CODEC_FRAME = {"FLAC": 4608, "MP3": 1152, "OGG": 8192}
#: Seconds of a decord-decoded sound track forgiven at the end.
CONTAINER_TOLERANCE_S = 0.5


def truncated(path: Path, declared_s: float, held_s: float) -> anymodal.InputError:
    """``<noun> file is truncated: its header says 2.00 s, it holds 1.75 ms: <path>``."""
    declared, held = format_durations(declared_s, held_s)
    return anymodal.InputError(
        f"{NOUN} file is truncated: its header says {declared}, it holds {held}: {path}", hint=HINT
    )


def ogg_without_end(path: Path) -> anymodal.InputError:
    """An Ogg file whose last page is cut short or missing (no end-of-stream page)."""
    return anymodal.InputError(
        f"{NOUN} file is truncated: its Ogg stream stops without its end-of-stream page: {path}",
        hint=HINT,
    )
