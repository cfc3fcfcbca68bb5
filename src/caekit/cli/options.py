"""Arguments shared by several commands, in one vocabulary: ``--model NAME`` is an architecture, ``--run RUN`` a
trained run (its folder or a .safetensors checkpoint), ``--out`` defaults into the run folder."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

Decorator = Callable[[Any], Any]


def warn(message: str) -> None:
    """One line on stderr, as every caekit warning."""
    click.echo(f"caekit: warning: {message}", err=True)


def stacked(*decorators: Decorator) -> Decorator:
    """Several click decorators as one, applied as if written in this order above the function."""

    def apply(command: Any) -> Any:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


def trained_run(help: str = "Trained run folder or .safetensors checkpoint.") -> Decorator:
    """``--run RUN`` (``-r``); the old spelling ``--model RUN`` still works for one release, with a warning."""

    def apply(function: Any) -> Any:
        @functools.wraps(function)
        def command(*args: Any, run: str | None, legacy_run: str | None, **kwargs: Any) -> Any:
            if legacy_run is not None:
                warn("--model RUN is deprecated for a trained run; use --run RUN (--model names an architecture)")
                run = run or legacy_run
            if run is None:
                raise click.UsageError("missing option '--run RUN' (a trained run folder or .safetensors checkpoint)")
            return function(*args, run=run, **kwargs)

        command = click.option("--model", "legacy_run", hidden=True, type=click.Path(), help="Old spelling of --run.")(command)
        return click.option("--run", "-r", "run", type=click.Path(), help=help)(command)

    return apply


def out_option(what: str, file: bool = False) -> Decorator:
    return click.option(
        "--out",
        "-o",
        type=click.Path(dir_okay=not file, file_okay=file),
        default=None,
        help=f"Where to write {what} (default: inside the run folder).",
    )


def image_files_and_run(what: str, run_help: str = "Trained run folder or .safetensors checkpoint.") -> Decorator:
    """``IMAGES... --run RUN --out FOLDER``: the arguments of a command that runs a trained model on image files."""
    return stacked(click.argument("images", nargs=-1, required=True, type=click.Path()), trained_run(run_help), out_option(what))


def data_options(verb: str = "encode") -> Decorator:
    """``--dataset``, ``--data-root`` and ``--split``: a run's own split by default, or another dataset's."""
    return stacked(
        click.option(
            "--dataset", "-d", help=f"Another dataset to {verb}, in the model's image shape (default: the run's own splits)."
        ),
        click.option("--data-root", type=click.Path(), help="Folder holding --dataset."),
        click.option(
            "--split",
            "split_name",
            type=click.Choice(["train", "val", "test"]),
            default="test",
            help="Which split: the run's own, made again exactly as it was trained (seed, fractions, limit).",
        ),
    )


def seed_option(help: str = "Random seed.") -> Decorator:
    return click.option("--seed", type=int, default=0, help=help)


def run_on_files(verb: str, images: tuple[str, ...], run: str, out: str | None, **options: Any) -> None:
    """Call ``caekit.api.<verb>(images, run, out, **options)`` and print what it wrote."""
    import caekit.api

    click.echo(getattr(caekit.api, verb)(images, run, out, **options).summary())
