"""The command line: parses arguments and calls the Python API, nothing more.

Each area keeps its commands in its own module (``COMMANDS`` list); ``main`` gathers them. User errors print one
line (``caekit: error: ...``) and exit with status 2, warnings one line each (``caekit: warning: ...``), never a
traceback. Commands run with the CPU tuning a library import leaves off (``train.cpu_tuning``).
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from caekit.errors import CaekitError
from caekit.plugins import ENVIRONMENT as PLUGINS

COMMAND_MODULES = ("core", "representations", "family", "pixelwise", "workflow")
CPU_TUNING = "CAEKIT_CPU_TUNING"  # read by the engine when train.cpu_tuning is left empty


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "show_default": True})
@click.version_option(package_name="caekit")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Import this module first, so the models, datasets and objectives it registers work here (repeatable; "
    "installed caekit.plugins entry points and $CAEKIT_PLUGINS load too).",
)
def cli(plugins: tuple[str, ...]) -> None:
    """caekit: convolutional autoencoders on real images."""
    from caekit.plugins import load_plugins

    load_plugins(plugins)
    if plugins:  # the processes a command starts (search trials, DDP ranks) load them too
        named = [m for m in os.environ.get(PLUGINS, "").split(",") if m]
        os.environ[PLUGINS] = ",".join(dict.fromkeys([*named, *plugins]))


for _module in COMMAND_MODULES:
    for _command in importlib.import_module(f"caekit.cli.{_module}").COMMANDS:
        cli.add_command(_command)


def one_line(text: str) -> str:
    """``text`` as one printable line: what a user typed can hold control characters or line separators."""
    return "".join(c if c.isprintable() else " " if c in "\n\t" else repr(c)[1:-1] for c in text)


def _one_line(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    click.echo(f"caekit: warning: {one_line(' '.join(str(message).split()))}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit status 2."""
    previous = {name: os.environ.get(name) for name in (CPU_TUNING, PLUGINS)}  # set during the call only
    os.environ.setdefault(CPU_TUNING, "1")  # also for the processes a command starts (search trials, DDP ranks)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
            warnings.showwarning = _one_line
            cli.main(args=argv, prog_name="caekit", standalone_mode=False)
    except CaekitError as exc:
        click.echo(f"caekit: error: {one_line(str(exc))}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("caekit: interrupted; the last checkpoint is kept (continue with --resume RUN)", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        where = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        click.echo(f"caekit: error: {one_line(exc.format_message())}{where}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"caekit: error: {one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # the user's disk, folders and permissions: a full disk, a read-only runs folder
        where = f" '{exc.filename}'" if exc.filename else ""
        click.echo(
            f"caekit: error: {one_line(str(exc.strerror or exc))}{one_line(where)}; free space, fix the permissions or choose another folder "
            "(nothing that was written before is lost)",
            err=True,
        )
        sys.exit(2)
    except Exception as exc:  # a bug: one line here, the whole traceback in a log file for the report
        log = _log_traceback()
        click.echo(
            f"caekit: internal error: {type(exc).__name__}: {one_line(' '.join(str(exc).split()))[:300]}; the traceback is in "
            f"{log} (please report it)",
            err=True,
        )
        sys.exit(1)
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _log_traceback() -> Path | str:
    """Write the current exception's traceback to a log file in the cache folder; its path (or why not)."""
    import time
    import traceback

    from caekit.fileio import atomic_write_text, cache_root

    path = cache_root() / "logs" / f"caekit-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        atomic_write_text(path, f"caekit {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}")
    except OSError as exc:
        return f"nowhere: writing {path} failed too ({exc.strerror})"
    return path
