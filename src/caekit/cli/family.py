"""Commands of this area (filled in by its issue); `caekit.cli` adds every command in COMMANDS."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
