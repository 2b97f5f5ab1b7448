"""What a command that runs a model says about it before it starts: the model's own notice, the
optional modalities left out because no installed plugin provides them, and the parts that have no
trained weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from anymodal.config.model_files import untrained_parts

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
    untrained = untrained_parts(loaded.config.model)
    if untrained:
        notes.append(
            f"warning: untrained, so its answers are noise until trained: {', '.join(untrained)} "
            "(no weights file; a fixed seed makes them the same on every run; see docs/training.md)"
        )
    for note in notes:
        click.secho(note, fg="yellow", err=True)
