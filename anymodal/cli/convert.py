"""``anymodal convert pandagpt``: released checkpoints of other projects as anymodal models."""

from __future__ import annotations

from pathlib import Path

import click

from anymodal.cli.outputs import output_directory


def convert() -> click.Command:
    @click.group("convert")
    def group() -> None:
        """Turn another project's released weights into an anymodal model directory."""

    @group.command("pandagpt")
    @click.argument("delta", type=click.Path(path_type=Path, dir_okay=False))
    @click.option(
        "--llm",
        required=True,
        help="Vicuna v0 (7B or 13B, matching the delta): a Hugging Face model directory.",
    )
    @click.option(
        "--imagebind",
        required=True,
        type=click.Path(path_type=Path, dir_okay=False),
        help="ImageBind-huge's released imagebind_huge.pth.",
    )
    @output_directory()
    def pandagpt(delta: Path, llm: str, imagebind: Path, output: Path) -> None:
        """PandaGPT's delta DELTA (pytorch_model.pt): its projection becomes a linear projector for
        every ImageBind modality, its LoRA a PEFT adapter, and the config reproduces PandaGPT's
        prompt, its single summed input token and its audio scaling."""
        from anymodal.models import pandagpt as panda

        checked = panda.read_delta(delta)
        click.echo(checked.describe(), err=True)
        if checked.ignored:
            click.echo(
                f"note: ignored {len(checked.ignored)} other tensors, e.g. {checked.ignored[0]}", err=True
            )
        llm_path = Path(llm).expanduser()
        llm_value = str(llm_path.resolve()) if llm_path.exists() else llm
        for what, path in (("LLM", llm_path), ("ImageBind checkpoint", imagebind.expanduser())):
            if not path.exists():
                click.echo(f"note: {what} {path} does not exist yet; chatting needs it there", err=True)
        for file in panda.convert(checked, output, llm_value, str(imagebind.expanduser().resolve())):
            click.echo(f"wrote {file}")
        click.echo(
            f'next: anymodal chat --model {output} --image photo.jpg "What is in this picture?"', err=True
        )

    return group
