"""How far a sensor that sees a scene's layout, and nothing else, could retrieve in the demo's image
space: the ceiling of ``benchmarks/bind_demo.py``'s recall@1.

A point cloud sees a scene's shape, place, size and turn, not its colour or background. This fits
the best-placed such sensor there could be: a small MLP from each training scene's exact layout
(:func:`anymodal.demo.captions.layout_caption`, read off ``scenes.jsonl``) to the demo image
encoder's pooled embedding of its picture, with the objective ``anymodal bind`` uses (symmetric
InfoNCE, logit scale 20), and reports its retrieval among the held-out scenes' pictures. A bound
encoder that must read the layout off a noisy, tilted, occluded scan does no better than this.

    python -m anymodal.demo.pairs /tmp/pairs-train 800 1 pointcloud
    python -m anymodal.demo.pairs /tmp/pairs-held 200 2 pointcloud
    python benchmarks/bind_ceiling.py /tmp/pairs-train /tmp/pairs-held [--weights imagebind.safetensors]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def layouts_and_pictures(folder: Path, config: Any, registry: Any) -> tuple[Any, Any]:
    """The scenes' layout captions ``[N, CAPTION_WIDTH]`` and their pictures' embeddings ``[N, D]``."""
    import torch

    from anymodal.demo.captions import layout_caption
    from anymodal.runtime.embedding import embed_files

    scenes = [json.loads(line) for line in (folder / "scenes.jsonl").read_text().splitlines() if line]
    layouts = torch.tensor([layout_caption(s["image"]["render"], s["shape"]) for s in scenes])
    pictures = embed_files(
        [("image", folder / s["image"]["file"]) for s in scenes], config, registry, batch_size=64
    )
    return layouts, torch.stack([e.vector for e in pictures])


def ceiling(train: Path, held_out: Path, weights: str | None, steps: int = 3000) -> dict[str, float]:
    import torch

    from anymodal.bind.objective import InfoNCE, recall_at
    from anymodal.config import load_config
    from anymodal.contract.registry import get_registry
    from anymodal.demo.captions import CaptionEncoder

    registry = get_registry()
    overrides = [] if weights is None else [f"model.modalities.image.encoder.weights={weights}"]
    config = load_config("builtin:demo", overrides, registry).config
    layouts, pictures = layouts_and_pictures(train, config, registry)
    held_layouts, held_pictures = layouts_and_pictures(held_out, config, registry)
    torch.manual_seed(0)
    predictor, objective = CaptionEncoder(pictures.shape[1]), InfoNCE(20.0)
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(steps):
        rows = torch.randint(len(layouts), (128,))
        loss = objective(predictor(layouts[rows]), pictures[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        found = recall_at(predictor(held_layouts), held_pictures)
    return {k: round(v, 3) for k, v in found.items() if k.startswith("bound_to_target")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="a folder of anymodal.demo.pairs (scenes.jsonl, image/)")
    parser.add_argument("held_out", type=Path, help="another one, drawn with another seed")
    parser.add_argument("--weights", help="the image encoder's weights [the shipped demo model's]")
    args = parser.parse_args()
    for folder in (args.train, args.held_out):
        if not (folder / "scenes.jsonl").is_file():
            parser.error(
                f"{folder} has no scenes.jsonl: write one with python -m anymodal.demo.pairs DIR N SEED"
            )
    print(json.dumps(ceiling(args.train, args.held_out, args.weights)))


if __name__ == "__main__":
    main()
