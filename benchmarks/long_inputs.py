"""Long inputs: time and peak memory for 1, 10 and 60 minutes of audio and video, against reading
the whole file.

ImageBind looks at three 2-second clips of a sound and five 2-second clips of a video whatever
their length, so the work should not grow with the file beyond finding those clips. For each
length, in fresh processes (so each peak resident memory is its own):

1. ``anymodal``: the plugin's loader and preprocessor, as ``anymodal chat`` runs them (the audio
   plugin seeks to each clip; the video plugin decodes only the sampled frames);
2. ``reference``: the straightforward way to the same tensor: the whole file decoded into memory
   (every sample with soundfile; every frame with decord), then the same preprocessing;
3. ``chat``: the whole ``anymodal chat --<modality> FILE "Describe it."`` on the built-in demo
   model, start to exit.

Memory is the process's peak resident set (``ru_maxrss``) and, for 1 and 2, its rise over the
imports. The inputs are synthetic: a 44.1 kHz mono 16-bit WAV (a slow sweep), and a 128x128
5 fps MPEG-4 video of a moving square, written in chunks so that making them stays bounded.

    python benchmarks/long_inputs.py [--minutes 1 10 60] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

RATE = 44100
FPS = 5
SIDE = 128
MIB = 2**20


def write_wav(path: Path, minutes: float) -> Path:
    import numpy as np

    total = int(minutes * 60 * RATE)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        for start in range(0, total, RATE * 10):
            t = np.arange(start, min(start + RATE * 10, total)) / RATE
            tone = 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(t / 7)) * t)
            out.writeframes((tone * 32767).astype("<i2").tobytes())
    return path


def write_video(path: Path, minutes: float) -> Path:
    import av
    import numpy as np

    frames = int(minutes * 60 * FPS)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            image = np.full((SIDE, SIDE, 3), 40, dtype=np.uint8)
            x = (index * 3) % (SIDE - 24)
            image[50:74, x : x + 24] = (220, 60, 60)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def child(kind: str, modality: str, path: Path) -> dict[str, Any]:
    """Run in a fresh process: one way of turning ``path`` into the encoder's input tensor."""
    import importlib

    import torch  # noqa: F401 - imported before the baseline, as any run of the plugin has it

    from anymodal.testing import registered_modality

    spec = registered_modality(importlib.import_module(f"anymodal_{modality}.plugin"), modality)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    if kind == "anymodal":
        tensor = spec.preprocess(spec.loader(path))
    elif modality == "audio":
        import soundfile
        from anymodal_audio.decode import DecodedAudio

        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        tensor = spec.preprocess(DecodedAudio(samples.T.copy(), rate, path))
    else:
        import decord

        reader = decord.VideoReader(str(path), num_threads=2)
        every = reader.get_batch(list(range(len(reader)))).asnumpy()  # the whole video, decoded
        tensor = spec.preprocess(_video_from_frames(spec.loader(path), every))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mib": peak, "rise_mib": peak - baseline, "shape": list(tensor.shape)}


def _video_from_frames(opened: Any, frames: Any) -> Any:
    """The opened video, reading its frames from the decoded array instead of the file."""

    class Decoded:
        def get_batch(self, indices: list[int]) -> Any:
            return frames[indices]

    opened.reader = Decoded()
    return opened


def run_child(kind: str, modality: str, path: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, modality, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_chat(modality: str, path: Path) -> dict[str, Any]:
    anymodal = Path(sys.executable).with_name("anymodal")
    command = [str(anymodal), "chat", f"--{modality}", str(path), "--max-new-tokens", "8", "Describe it."]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    reply = process.stdout.read().strip() if process.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"anymodal chat failed on {path}")
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "reply": reply}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--workdir", type=Path, help="keep the generated inputs here (default: a temp dir)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "MODALITY", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, modality, path = args.child
        print(json.dumps(child(kind, modality, Path(path))))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="anymodal-long-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for modality, writer, suffix in (("audio", write_wav, ".wav"), ("video", write_video, ".mp4")):
        for minutes in args.minutes:
            path = workdir / f"{modality}-{minutes:g}min{suffix}"
            if not path.exists():
                writer(path, minutes)
            ours = run_child("anymodal", modality, path)
            reference = run_child("reference", modality, path)
            chat = run_chat(modality, path)
            assert ours["shape"] == reference["shape"], (ours, reference)
            rows.append((modality, minutes, path.stat().st_size / MIB, ours, reference, chat))
            print(f"{modality} {minutes:g} min done", file=sys.stderr, flush=True)
    print(
        "| input | file (MiB) | anymodal s | anymodal rise (MiB) | reference s | reference rise (MiB) "
        "| time ratio | memory ratio | chat s | chat peak RSS (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for modality, minutes, size, ours, reference, chat in rows:
        print(
            f"| {modality} {minutes:g} min | {size:.0f} | {ours['seconds']:.2f} | {ours['rise_mib']:.0f} "
            f"| {reference['seconds']:.2f} | {reference['rise_mib']:.0f} "
            f"| {ours['seconds'] / reference['seconds']:.3f} "
            f"| {max(ours['rise_mib'], 1) / max(reference['rise_mib'], 1):.3f} "
            f"| {chat['seconds']:.1f} | {chat['peak_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
