"""``python -m anymodal``: the CLI, also what ``accelerate launch -m anymodal train ...`` runs."""

from anymodal.cli import run

if __name__ == "__main__":
    run()
