"""``anymodal embed`` and ``anymodal similarity``: encoder embeddings and cross-modal retrieval.

Both use each modality's encoder only (no LLM): from ``--model``'s config when it enables the
modality, else the modality's default encoder (ImageBind for the first-party plugins), with
``--weights`` pointing at a checkpoint such as ``imagebind_huge.pth``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from anymodal.cli.inputs import given_files, modality_options
from anymodal.contract.errors import UsageError
from anymodal.contract.registry import get_registry

if TYPE_CHECKING:
    from anymodal.config.schema import ModalityConfig
    from anymodal.runtime.embedding import Embedding

RESERVED = {"--model", "--set", "--weights", "--output", "--batch-size", "--by", "--top", "--json", "--help"}


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--model", "model_source", metavar="PRESET|DIR", help="Config whose encoders to use."
            ),
            click.option(
                "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key."
            ),
            click.option("--weights", metavar="CKPT", help="Encoder checkpoint, e.g. imagebind_huge.pth."),
            click.option("--batch-size", default=8, show_default=True, help="Inputs encoded at once."),
        ]
    ):
        command = option(command)
    return command


def _embed(
    model_source: str | None,
    overrides: tuple[str, ...],
    weights: str | None,
    batch_size: int,
    inputs: dict[str, tuple[str, ...]],
) -> list[Embedding]:
    from anymodal.config import load_config
    from anymodal.runtime.embedding import embed_files

    files = given_files(inputs)
    if not files:
        raise UsageError("no input files given", hint="pass files with --<modality> FILE, e.g. --image a.jpg")
    registry = get_registry()
    loaded = load_config(model_source, overrides, registry)
    embeddings = embed_files(files, loaded.config, registry, weights=weights, batch_size=batch_size)
    unweighted = sorted(
        {m for m, _ in files if not (weights or _configured_weights(loaded.config.model.modalities, m))}
    )
    if unweighted:
        click.secho(
            f"note: no encoder weights for {', '.join(unweighted)}, so its embeddings come from random "
            "weights; pass --weights CKPT (e.g. imagebind_huge.pth)",
            fg="yellow",
            err=True,
        )
    return embeddings


def _configured_weights(modalities: Mapping[str, ModalityConfig], modality: str) -> str | None:
    return modalities[modality].encoder.weights if modality in modalities else None


def embed() -> click.Command:
    @click.command("embed", params=modality_options(get_registry(), RESERVED))
    @_common
    @click.option("--output", type=click.Path(path_type=Path), help="Write to FILE.json or FILE.npy.")
    def command(
        model_source: str | None,
        overrides: tuple[str, ...],
        weights: str | None,
        batch_size: int,
        output: Path | None,
        **inputs: tuple[str, ...],
    ) -> None:
        """Write each file's embedding (JSON on stdout by default)."""
        if output is not None and output.suffix not in (".json", ".npy"):
            raise UsageError(f"--output must end in .json or .npy, not {output.name!r}")
        embeddings = _embed(model_source, overrides, weights, batch_size, inputs)
        if output is not None and output.suffix == ".npy":
            import numpy as np

            np.save(output, np.stack([e.vector.numpy() for e in embeddings]))
            for row, item in enumerate(embeddings):
                click.echo(f"{row}\t{item.modality}\t{item.path}")
            return
        records = [
            {
                "modality": e.modality,
                "file": str(e.path),
                "embedding": [round(v, 7) for v in e.vector.tolist()],
            }
            for e in embeddings
        ]
        text = json.dumps(records)
        if output is None:
            click.echo(text)
        else:
            output.write_text(text + "\n")

    return command


def similarity() -> click.Command:
    @click.command("similarity", params=modality_options(get_registry(), RESERVED))
    @_common
    @click.option("--by", metavar="MODALITY", help="The modality whose files are the queries.")
    @click.option("--top", type=int, help="Show only the best K matches per query.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def command(
        model_source: str | None,
        overrides: tuple[str, ...],
        weights: str | None,
        batch_size: int,
        by: str | None,
        top: int | None,
        as_json: bool,
        **inputs: tuple[str, ...],
    ) -> None:
        """Rank the files of one modality against each file of another (cosine similarity).

        Give files of exactly two modalities; the one with fewer files (or --by) are the queries.
        """
        from anymodal.runtime.embedding import cosine_matrix

        given = [name for name, paths in inputs.items() if paths]
        if len(given) != 2:
            raise UsageError(
                f"similarity needs files of exactly two modalities, got {len(given)}",
                hint="for example: --image a.jpg --image b.jpg --audio dog.wav",
            )
        counts = {name.removeprefix("input_"): len(inputs[name]) for name in given}
        if by is not None and by not in counts:
            raise UsageError(f"--by {by!r} is not one of the given modalities: {', '.join(sorted(counts))}")
        query = by or min(sorted(counts), key=lambda name: counts[name])
        embeddings = _embed(model_source, overrides, weights, batch_size, inputs)
        queries = [e for e in embeddings if e.modality == query]
        candidates = [e for e in embeddings if e.modality != query]
        scores = cosine_matrix(queries, candidates)
        ranking = []
        for row, item in enumerate(queries):
            order = scores[row].argsort(descending=True)[: top or len(candidates)]
            ranking.append((item, [(candidates[i], float(scores[row, i])) for i in order]))
        if as_json:
            records = [
                {
                    "query": str(item.path),
                    "modality": query,
                    "matches": [{"file": str(c.path), "score": round(score, 6)} for c, score in matches],
                }
                for item, matches in ranking
            ]
            click.echo(json.dumps(records, indent=2))
            return
        for item, matches in ranking:
            click.echo(str(item.path))
            for rank, (candidate, score) in enumerate(matches, 1):
                click.echo(f"  {rank}. {score:+.4f}  {candidate.path}")

    return command
