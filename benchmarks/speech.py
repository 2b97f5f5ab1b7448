"""Speech through anymodal-speech against the same work done by hand with openai-whisper.

For one recording (default: 20 s of 16 kHz mono speech-like tone written as wav; ``--file`` for
your own), the median time of each stage over ``--repeats`` runs after a warm-up:

* anymodal: the registered ``speech`` spec's loader (decord, in process, 16 kHz mono) and
  preprocessor (Whisper's log-mel), then the ``whisper`` encoder as the runtime builds it.
* reference: what a script using openai-whisper does when no ffmpeg binary is at hand:
  ``soundfile.read``, ``whisper.audio.pad_or_trim`` + ``log_mel_spectrogram``, then
  ``whisper.model.AudioEncoder`` with the same weights.

Both encoders have the dims of ``--size`` (default ``base``) and the same random weights (the
speed does not depend on their values); float32. The features' largest difference is printed as
a check that both did the same work.

    python benchmarks/speech.py [--size base] [--seconds 20] [--file F.wav] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from anymodal_speech import plugin
from anymodal_speech.options import WhisperEncoderOptions
from anymodal_speech.testing import write_wav
from whisper.audio import N_SAMPLES, log_mel_spectrogram, pad_or_trim
from whisper.model import AudioEncoder

from anymodal.testing import registered_modality


def median_ms(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    run()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="base")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as scratch:
        path = args.file or write_wav(Path(scratch) / "speech.wav", seconds=args.seconds)
        spec = registered_modality(plugin, "speech")
        encoder = plugin.build_encoder("speech", WhisperEncoderOptions(size=args.size))
        encoder = encoder.to(args.device).eval()
        dims = encoder.dims
        reference = AudioEncoder(
            dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer
        )
        reference.load_state_dict(encoder.encoder.state_dict())
        reference = reference.to(args.device).eval()

        def sync(x: torch.Tensor) -> torch.Tensor:
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            return x

        ours: dict[str, Any] = {}
        ours["decode"] = median_ms(lambda: spec.loader(path), args.repeats)
        decoded = ours["decode"][1]
        ours["log-mel"] = median_ms(lambda: spec.preprocess(decoded, n_mels=dims.n_mels), args.repeats)
        mel = ours["log-mel"][1].unsqueeze(0).to(args.device)
        ours["encoder"] = median_ms(lambda: sync(encoder(mel).features), args.repeats)

        def read() -> np.ndarray:
            samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
            assert rate == 16000, "the reference reads 16 kHz files only (it has no resampler)"
            return samples.mean(axis=1)

        theirs: dict[str, Any] = {}
        theirs["decode"] = median_ms(read, args.repeats)
        audio = torch.from_numpy(theirs["decode"][1])
        theirs["log-mel"] = median_ms(
            lambda: log_mel_spectrogram(pad_or_trim(audio, N_SAMPLES), n_mels=dims.n_mels), args.repeats
        )
        reference_mel = theirs["log-mel"][1].unsqueeze(0).to(args.device)
        theirs["encoder"] = median_ms(lambda: sync(reference(reference_mel)), args.repeats)

        recording = f"{decoded.duration:.1f} s recording"
        print(f"whisper {args.size} encoder, {args.device}, {recording}, median of {args.repeats}")
        print(f"{'stage':<10}{'anymodal ms':>14}{'reference ms':>15}{'ratio':>8}")
        for stage in ("decode", "log-mel", "encoder"):
            mine, reference_ms = ours[stage][0], theirs[stage][0]
            print(f"{stage:<10}{mine:>14.1f}{reference_ms:>15.1f}{mine / reference_ms:>8.2f}")
        total_ours = sum(ours[s][0] for s in ours)
        total_theirs = sum(theirs[s][0] for s in theirs)
        print(f"{'total':<10}{total_ours:>14.1f}{total_theirs:>15.1f}{total_ours / total_theirs:>8.2f}")
        difference = (ours["encoder"][1] - theirs["encoder"][1]).abs().max().item()
        print(f"largest feature difference: {difference:.2e}")


if __name__ == "__main__":
    main()
