"""ImageBind-huge with random weights: all six trunks built (as the official package builds it)
versus only the trunk the input needs (anymodal's default), in one run.

Each configuration runs in a fresh process, so its peak resident memory is its own. Reports build
time, peak memory and encode throughput (inputs/s) of preprocessed inputs of the chosen modality.

    python benchmarks/imagebind_encode.py                          # image inputs, CPU, float32
    python benchmarks/imagebind_encode.py --modality audio --inputs 8
    python benchmarks/imagebind_encode.py --device cuda --dtype bfloat16 --inputs 64 --batch 16
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

#: One preprocessed input per modality, as the first-party plugins produce it.
SHAPES = {
    "vision": (3, 224, 224),
    "audio": (3, 1, 128, 204),
    "depth": (1, 224, 224),
    "thermal": (1, 224, 224),
    "imu": (6, 2000),
}
TRUNK = {"image": "vision", "audio": "audio", "depth": "depth", "thermal": "thermal", "imu": "imu"}


def child(args: argparse.Namespace) -> None:
    import torch

    from anymodal.encoders.imagebind import IMAGEBIND_HUGE, ImageBind

    trunk = TRUNK[args.modality]
    torch.manual_seed(0)
    start = time.perf_counter()
    model = ImageBind(IMAGEBIND_HUGE, modalities=None if args.trunks == "all" else [trunk])
    model.to(device=args.device, dtype=getattr(torch, args.dtype)).eval()
    build_s = time.perf_counter() - start
    batch = torch.randn(args.batch, *SHAPES[trunk], device=args.device, dtype=getattr(torch, args.dtype))
    with torch.inference_mode():
        model.encode(trunk, batch)  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.inputs // args.batch):
            model.encode(trunk, batch)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        encode_s = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if args.device.startswith("cuda"):
        peak_gib = torch.cuda.max_memory_allocated() / 2**30
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"build_s": build_s, "rate": args.inputs // args.batch * args.batch / encode_s,
                      "peak_gib": peak_gib, "params": params}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", default="image", choices=sorted(TRUNK))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--inputs", type=int, default=4, help="inputs encoded after a warm-up batch")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--child", choices=["all", "one"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.trunks = args.child
        child(args)
        return

    results = {}
    for trunks in ("all", "one"):
        command = [sys.executable, __file__, "--child", trunks, *sys.argv[1:]]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[trunks] = json.loads(output.strip().splitlines()[-1])
    memory = "peak GPU memory (GiB)" if args.device.startswith("cuda") else "peak RSS (GiB)"
    print(f"ImageBind-huge, random weights, {args.modality} inputs, {args.dtype} on {args.device}, "
          f"{args.inputs} inputs in batches of {args.batch}")  # fmt: skip
    print(f"| trunks built | parameters | build (s) | {memory} | inputs/s |")
    print("|---|---:|---:|---:|---:|")
    for label, key in (("all six (official)", "all"), (f"{TRUNK[args.modality]} only (anymodal)", "one")):
        r = results[key]
        cells = f"{r['params'] / 1e6:.0f}M | {r['build_s']:.1f} | {r['peak_gib']:.2f} | {r['rate']:.2f}"
        print(f"| {label} | {cells} |")
    a, o = results["all"], results["one"]
    print(f"| ratio (one / all) | {o['params'] / a['params']:.2f} | {o['build_s'] / a['build_s']:.2f} | "
          f"{o['peak_gib'] / a['peak_gib']:.2f} | {o['rate'] / a['rate']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
