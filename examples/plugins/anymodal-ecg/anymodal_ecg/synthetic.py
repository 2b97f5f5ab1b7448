"""A tiny synthetic ECG world, seeded: recordings of four rhythms, conversations about them in the
trainer's format, and the ``ecg-cnn`` encoder pre-trained on them.

::

    python -m anymodal_ecg.synthetic OUT [--train 400] [--held-out 100] [--seed 0] [--encoder-steps 300]

writes

* ``OUT/train/`` and ``OUT/held-out/``: recordings (``NNNN.npy``, ``[leads, samples]``, and every
  fifth one as ``NNNN.csv``, a ``[samples, leads]`` table with a header row, as a recorder's export
  would be) and ``conversations.jsonl``, one record per recording: ``{"id", "ecg": file,
  "conversations": [{"from": "human", "value": "<ecg>\\nWhat is the rhythm?"}, {"from": "gpt",
  "value": "The rhythm is fast."}], "meta": {...}}``; ``meta.turns[0].checks`` says which word the
  answer must hold and which it must not, for ``anymodal eval``;
* ``OUT/ecg-cnn.safetensors``: the encoder's weights (a plain state dict of
  :class:`anymodal_ecg.encoder.EcgNet`), pre-trained on the training recordings by classifying
  their rhythm from the pooled embedding with a linear head, which is then dropped. anymodal keeps
  encoders frozen and trains projectors; a real sensor's encoder comes pre-trained the same way.

The rhythms, by heart rate and beat-to-beat (RR) variability:

=========== ================ ===========================================================
rhythm      beats per minute RR intervals
=========== ================ ===========================================================
normal      60-95            regular (2 % jitter), P waves
fast        115-170          regular, P waves (sinus tachycardia)
slow        35-52            regular, P waves (sinus bradycardia)
irregular   65-110           each interval drawn anew, 25-40 % spread, no P waves (AF-like)
=========== ================ ===========================================================

Each recording is ``DEFAULT_SAMPLES`` samples (10 s at 250 Hz) of ``LEADS`` leads: a sum of
Gaussian P, Q, R, S and T waves per beat (the T wave closer after a fast beat), each lead its own
gain, with Gaussian noise, baseline wander (a slow sine) and an overall amplitude of 0.5-2 mV.
The same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anymodal_ecg.options import DEFAULT_SAMPLES, LEADS, SAMPLE_RATE

RHYTHMS = ("normal", "fast", "slow", "irregular")
#: rhythm -> (lowest, highest) beats per minute.
HEART_RATES = {"normal": (60, 95), "fast": (115, 170), "slow": (35, 52), "irregular": (65, 110)}
QUESTIONS = (
    "What is the rhythm?",
    "What rhythm does this ECG show?",
    "Is the heart beating fast, slow, normally or irregularly?",
    "Describe the rhythm of this recording.",
)
#: The gain of each lead, before a recording's own variation.
LEAD_GAINS = (0.7, 1.0, 0.45)
CSV_EVERY = 5


def answer(rhythm: str) -> str:
    return f"The rhythm is {rhythm}."


def beat_times(rhythm: str, rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, float]:
    """The times of the R peaks (s) over ``seconds``, and the mean heart rate (bpm)."""
    low, high = HEART_RATES[rhythm]
    rate = rng.uniform(low, high)
    mean_rr = 60.0 / rate
    spread = rng.uniform(0.25, 0.40) if rhythm == "irregular" else 0.02
    times = [rng.uniform(0.0, mean_rr)]
    while times[-1] < seconds + 1.0:
        times.append(times[-1] + mean_rr * max(0.4, 1.0 + spread * rng.uniform(-1.7, 1.7)))
    return np.asarray(times), rate


def recording(rhythm: str, rng: np.random.Generator, samples: int = DEFAULT_SAMPLES) -> np.ndarray:
    """One float32 ``[LEADS, samples]`` recording of ``rhythm``, in millivolts."""
    if rhythm not in HEART_RATES:
        raise ValueError(f"rhythm must be one of {', '.join(RHYTHMS)}, got {rhythm!r}")
    t = np.arange(samples) / SAMPLE_RATE
    peaks, _ = beat_times(rhythm, rng, samples / SAMPLE_RATE)
    wave = np.zeros(samples)
    p_wave = 0.0 if rhythm == "irregular" else rng.uniform(0.08, 0.16)
    for index, peak in enumerate(peaks):
        rr = peaks[index + 1] - peak if index + 1 < len(peaks) else peak - peaks[index - 1]
        # (offset s, amplitude, width s) of P, Q, R, S and T; QT shortens with the interval.
        for offset, amplitude, width in (
            (-0.17, p_wave, 0.022),
            (-0.028, -0.12, 0.009),
            (0.0, 1.0, 0.011),
            (0.03, -0.25, 0.01),
            (0.26 * np.sqrt(rr), rng.uniform(0.2, 0.35), 0.045),
        ):
            wave += amplitude * np.exp(-0.5 * ((t - peak - offset) / width) ** 2)
    gains = np.asarray(LEAD_GAINS) * rng.uniform(0.7, 1.3, LEADS)
    signal = rng.uniform(0.5, 2.0) * gains[:, None] * wave[None, :]
    wander = rng.uniform(0.05, 0.3, (LEADS, 1)) * np.sin(
        2 * np.pi * rng.uniform(0.1, 0.5) * t[None, :] + rng.uniform(0, 2 * np.pi, (LEADS, 1))
    )
    noise = rng.normal(0.0, rng.uniform(0.01, 0.05), (LEADS, samples))
    return (signal + wander + noise).astype(np.float32)


def write_split(directory: Path, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` recordings, the rhythms in turn, and their ``conversations.jsonl``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        rhythm = RHYTHMS[index % len(RHYTHMS)]
        array = recording(rhythm, rng)
        if index % CSV_EVERY == CSV_EVERY - 1:
            name = f"{index:04d}.csv"
            header = ",".join(f"lead{lead + 1}" for lead in range(LEADS))
            np.savetxt(
                directory / name, array.T, fmt="%.5f", delimiter=",", header=header, comments=""
            )
        else:
            name = f"{index:04d}.npy"
            np.save(directory / name, array)
        question = QUESTIONS[int(rng.integers(len(QUESTIONS)))]
        checks = {"rhythm": {"expect": [rhythm], "reject": [r for r in RHYTHMS if r != rhythm]}}
        records.append(
            {
                "id": f"ecg-{seed}-{index:04d}",
                "ecg": name,
                "conversations": [
                    {"from": "human", "value": f"<ecg>\n{question}"},
                    {"from": "gpt", "value": answer(rhythm)},
                ],
                "meta": {
                    "modality": "ecg",
                    "attributes": {"rhythm": rhythm},
                    "turns": [{"kind": "rhythm", "checks": checks}],
                },
            }
        )
    with (directory / "conversations.jsonl").open("w", encoding="utf-8") as stream:
        stream.writelines(json.dumps(record) + "\n" for record in records)
    return records


def pretrain_encoder(
    directory: Path, records: Sequence[dict[str, Any]], steps: int, seed: int, out: Path
) -> float:
    """Train ``ecg-cnn`` with a linear rhythm head on ``records`` (files in ``directory``) for
    ``steps`` steps, save the encoder's state dict (without the head) to ``out``, and return its
    accuracy on those records."""
    import torch
    from safetensors.torch import save_file

    from anymodal_ecg.encoder import EcgNet
    from anymodal_ecg.loader import load, preprocess
    from anymodal_ecg.options import EcgNetOptions

    inputs = torch.stack([preprocess(load(directory / record["ecg"])) for record in records])
    labels = torch.tensor(
        [RHYTHMS.index(record["meta"]["attributes"]["rhythm"]) for record in records]
    )
    options = EcgNetOptions()
    encoder = EcgNet(options)
    torch.manual_seed(seed)
    head = torch.nn.Linear(options.embed_dim, len(RHYTHMS))
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(len(inputs), (32,), generator=generator)
        loss = torch.nn.functional.cross_entropy(head(encoder(inputs[batch]).pooled), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval()
    with torch.no_grad():
        accuracy = float((head(encoder(inputs).pooled).argmax(-1) == labels).float().mean())
    save_file({name: value.contiguous() for name, value in encoder.state_dict().items()}, str(out))
    return accuracy


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m anymodal_ecg.synthetic", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "out", type=Path, help="directory to write train/, held-out/ and ecg-cnn.safetensors into"
    )
    parser.add_argument("--train", type=int, default=400, help="training recordings (default 400)")
    parser.add_argument(
        "--held-out", type=int, default=100, help="held-out recordings (default 100)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the training split's seed; held-out uses seed+1"
    )
    parser.add_argument(
        "--encoder-steps",
        type=int,
        default=300,
        help="pre-training steps of the encoder; 0 skips it",
    )
    args = parser.parse_args(argv)
    for name in ("train", "held_out"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.encoder_steps < 0:
        parser.error("--encoder-steps must be 0 or more")
    train = write_split(args.out / "train", args.train, args.seed)
    write_split(args.out / "held-out", args.held_out, args.seed + 1)
    print(f"wrote {args.train} training and {args.held_out} held-out recordings under {args.out}")
    if args.encoder_steps:
        weights = args.out / "ecg-cnn.safetensors"
        accuracy = pretrain_encoder(
            args.out / "train", train, args.encoder_steps, args.seed, weights
        )
        print(
            f"wrote {weights}: ecg-cnn pre-trained for {args.encoder_steps} steps, rhythm accuracy {accuracy:.3f} on its training recordings"
        )


if __name__ == "__main__":
    main()
