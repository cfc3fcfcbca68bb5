"""Arguments shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def image_files_and_model(out: str, model_help: str = "Run folder or .safetensors checkpoint.") -> Callable[[Any], Any]:
    """``IMAGES... --model RUN --out FOLDER``: the arguments of a command that runs a trained model on image files."""
    decorators = (click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False)),
                  click.option("--model", "run", required=True, type=click.Path(exists=True), help=model_help),
                  click.option("--out", type=click.Path(file_okay=False), default=out, show_default=True))

    def apply(command: Any) -> Any:
        for decorator in reversed(decorators):  # as if stacked in this order above the function
            command = decorator(command)
        return command

    return apply


def run_on_files(verb: str, images: tuple[str, ...], run: str, out: str, **options: Any) -> None:
    """Call ``caekit.api.<verb>(images, run, out, **options)`` and print what it wrote."""
    import caekit.api

    click.echo(getattr(caekit.api, verb)(images, run, out, **options).summary())
