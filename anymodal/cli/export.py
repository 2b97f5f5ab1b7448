"""``anymodal export MODEL -o DIR``: the LoRA merged into the LLM, written as plain files."""

from __future__ import annotations

from pathlib import Path

import click

from anymodal.cli.outputs import output_directory


def export() -> click.Command:
    @click.command("export")
    @click.argument("model")
    @output_directory()
    @click.option(
        "--dtype",
        type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
        default="auto",
        show_default=True,
        help="Weights of the exported LLM; auto keeps the dtype its config.json declares.",
    )
    @click.option(
        "--copy-encoders", is_flag=True, help="Copy encoder weights in too (else referenced by path)."
    )
    def command(model: str, output: Path, dtype: str, copy_encoders: bool) -> None:
        """Write MODEL (a preset, a model directory or a config file) with its LoRA merged into the
        LLM: llm/ is a plain Hugging Face model directory, projectors/ the projector weights, and
        anymodal.yaml points at them, so `anymodal chat --model DIR` takes the result."""
        from anymodal.config import load_config
        from anymodal.contract.registry import get_registry
        from anymodal.models.export import export_model

        registry = get_registry()
        loaded = load_config(model, registry=registry)
        written = export_model(
            loaded,
            registry,
            output,
            dtype=dtype,
            copy_encoders=copy_encoders,
            log=lambda t: click.echo(t, err=True),
        )
        click.echo(f"exported {loaded.source} to {written}")

    return command
