"""What a command that runs a model says about it before it starts: the model's own notice, and the
optional modalities left out because no installed plugin provides them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from anymodal.config import LoadedConfig


def show_model_notes(loaded: LoadedConfig) -> None:
    """Print the notes on ``loaded``'s model to stderr, in yellow; nothing when there are none."""
    notes = []
    if loaded.config.model.notice:
        notes.append(loaded.config.model.notice.strip())
    if loaded.left_out:
        notes.append(
            f"(left out, as no installed plugin provides them: {', '.join(loaded.left_out)}; "
            "`anymodal plugins` lists what is installed)"
        )
    for note in notes:
        click.secho(note, fg="yellow", err=True)
