"""The command line: parses arguments and calls the Python API, nothing more.

Each area keeps its commands in its own module (``COMMANDS`` list); ``main`` gathers them. User errors print one
line (``caekit: error: ...``) and exit with status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import click

from caekit.errors import CaekitError

COMMAND_MODULES = ("core", "representations", "family", "pixelwise", "workflow")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="caekit")
def cli() -> None:
    """caekit: convolutional autoencoders on real images."""


for _module in COMMAND_MODULES:
    for _command in importlib.import_module(f"caekit.cli.{_module}").COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit status 2."""
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
    try:
        cli.main(args=argv, prog_name="caekit", standalone_mode=False)
    except CaekitError as exc:
        click.echo(f"caekit: error: {exc}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("caekit: interrupted; the last checkpoint is kept (continue with --resume RUN)", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
