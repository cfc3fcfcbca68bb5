"""The run folder: the only interface between training and everything after it.

runs/<name>/config.yaml          the resolved configuration
           metrics.csv           one row per epoch
           results.json          final test metrics
           tb/                   TensorBoard event files
           checkpoints/last.*    safetensors + JSON, rewritten atomically every epoch
           checkpoints/best.*    the epoch with the best monitored validation metric
           *.png                 pictures
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from caekit.errors import CheckpointError, ConfigError
from caekit.fileio import atomic_write_text


def run_folder_of(path: str | Path) -> Path | None:
    """The run folder ``path`` names: the folder itself, or the run a checkpoint in its ``checkpoints/`` belongs to;
    None for a checkpoint file that lives outside a run folder."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.parent.name == "checkpoints" and (path.parent.parent / "config.yaml").is_file():
        return path.parent.parent
    return None


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, runs_dir: str | Path, name: str | None, default_stem: str) -> RunFolder:
        """A new folder; a missing name becomes ``<stem>-<date>-<time>``; a taken one gets a numeric suffix. Creation
        is atomic (``mkdir`` decides), so processes starting runs of one name at once each get their own."""
        name = check_name(name) if name is not None else f"{default_stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            path = Path(runs_dir) / (name if n == 1 else f"{name}-{n}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
        raise CheckpointError(f"'{runs_dir}' already holds 9,999 runs named '{name}'; choose another --name")

    @classmethod
    def existing(cls, path: str | Path) -> RunFolder:
        run = cls(path)
        if not (run.path / "config.yaml").is_file():
            raise CheckpointError(f"'{path}' is not a caekit run folder (no config.yaml)")
        return run

    # ----------------------------------------------------------------------------------- files

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, which: str = "last") -> Path:
        return self.checkpoints / f"{which}.safetensors"

    def best_or_last(self) -> Path:
        for which in ("best", "last"):
            if self.checkpoint(which).is_file():
                return self.checkpoint(which)
        raise CheckpointError(f"run '{self.path}' has no checkpoint yet")

    def picture(self, name: str) -> Path:
        return self.path / name

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete what a killed write left behind (``.<name>.*.tmp``); only the run's own writer may call this."""
        stale = [p for folder in (self.path, self.checkpoints) if folder.is_dir() for p in folder.glob(".*.tmp")]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def write_config(self, text: str) -> None:
        atomic_write_text(self.config_path, text)

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        path = self.path / name
        atomic_write_text(path, json.dumps(data, indent=1))
        return path

    def read_json(self, name: str) -> dict[str, Any]:
        """A JSON mapping of the run folder; {} when it is missing, and a one-line error when it is damaged."""
        path = self.path / name
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise CheckpointError(
                f"'{path}' is damaged (not JSON); delete it, or run `caekit evaluate {self.path}` to write it again"
            ) from None
        return data if isinstance(data, dict) else {}

    # ----------------------------------------------------------------------------------- metrics

    def write_metrics(self, history: list[dict[str, float]]) -> None:
        """Rewrite metrics.csv from the full history (atomic, so a resumed run never duplicates rows)."""
        columns: list[str] = []
        for row in history:
            columns += [k for k in row if k not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.metrics_path, buffer.getvalue())

    def read_metrics(self) -> list[dict[str, float]]:
        if not self.metrics_path.is_file():
            return []
        with self.metrics_path.open(encoding="utf-8", errors="replace") as f:
            return [{k: number for k, v in row.items() if k and (number := _number(v)) is not None} for row in csv.DictReader(f)]


def _number(text: Any) -> float | None:
    """A metrics.csv cell as a number; None for an empty or damaged one (the row keeps its other values)."""
    try:
        return float(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def check_name(name: str) -> str:
    """A run name is one folder name: not empty, no path separator, not '.' or '..', no control characters."""
    if not name or name in (".", "..") or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name):
        raise ConfigError(
            f"run name {name!r} must be one folder name (no '/', not '.' or '..'); use --runs-dir for where it goes"
        )
    return name
