"""``anymodal pull PRESET``: a released model's weights, fetched, verified and prepared."""

from __future__ import annotations

from pathlib import Path

import click


def pull() -> click.Command:
    @click.command("pull")
    @click.argument("preset")
    @click.option(
        "--max-len",
        type=int,
        help="Which release of the delta (PandaGPT: 1024 or 512 for 7B, 400 or 256 for 13B).",
    )
    @click.option(
        "--llm",
        type=click.Path(path_type=Path, file_okay=False),
        help="The LLM directory to link where the preset looks (Vicuna v0 cannot be downloaded).",
    )
    @click.option("--verify", is_flag=True, help="Re-hash pulled files against the manifest; fetch nothing.")
    def command(preset: str, max_len: int | None, llm: Path | None, verify: bool) -> None:
        """Download PRESET's weights into anymodal's weights directory ($ANYMODAL_HOME/weights),
        check their sizes and SHA-256 against the source, record them in manifest.json, and convert
        them as the preset reads them; then `anymodal chat --model PRESET` runs it."""
        from anymodal.config.sources import weights_dir
        from anymodal.contract.errors import AnymodalError
        from anymodal.models import pull as puller

        recipe = puller.recipe_for(preset, max_len)
        weights = Path(weights_dir())
        if verify:
            problems = puller.verify(recipe, weights)
            if problems:
                raise AnymodalError(f"{len(problems)} problem(s): {'; '.join(problems)}")
            click.echo(f"{preset}: every pulled file matches {weights / puller.MANIFEST}")
            return
        missing = puller.pull(
            recipe, weights, puller.NetworkFetcher(), llm=llm, log=lambda t: click.echo(t, err=True)
        )
        if missing:
            click.echo(f"{preset} still needs: {'; '.join(missing)}", err=True)
        else:
            click.echo(f'{preset} is ready: anymodal chat --model {preset} --image photo.jpg "What is this?"')

    return command
