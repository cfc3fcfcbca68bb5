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

from caekit.errors import CheckpointError
from caekit.fileio import atomic_write_text


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, runs_dir: str | Path, name: str | None, default_stem: str) -> RunFolder:
        """A new folder; a missing name becomes ``<stem>-<date>-<time>``; an existing one gets a numeric suffix."""
        base = Path(runs_dir) / (name or f"{default_stem}-{time.strftime('%Y%m%d-%H%M%S')}")
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        path.mkdir(parents=True)
        return cls(path)

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

    def write_config(self, text: str) -> None:
        atomic_write_text(self.config_path, text)

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        path = self.path / name
        atomic_write_text(path, json.dumps(data, indent=1))
        return path

    def read_json(self, name: str) -> dict[str, Any]:
        path = self.path / name
        return json.loads(path.read_text()) if path.is_file() else {}

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
        with self.metrics_path.open() as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
