"""The Python API, mirrored one to one by the CLI: every command is one of these calls.

    import caekit
    result = caekit.train({"model": {"name": "cae28"}, "data": {"name": "mnist", "root": "data"}})
    model, meta = caekit.load(result.run.path)
    codes = caekit.encode(model, caekit.run_splits(result.run.path).test)

This module only composes: runs are assembled by ``caekit.runner``, trained models used through
``caekit.inference``, files written by ``caekit.workflows.files``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from caekit.config import RunConfig, load_config, resolve_config
from caekit.errors import ConfigError
from caekit.inference import classify, encode, load, read_images, reconstruct, run_splits, sample
from caekit.runner import EpochHook, TrainResult, evaluate_run, train_run
from caekit.runs import RunFolder
from caekit.training import distributed
from caekit.training.callbacks import Callback
from caekit.workflows.compare import CompareConfig, classify_run, run_compare, summary_markdown
from caekit.workflows.encoder838 import encoder_838
from caekit.workflows.files import (
    cluster_split,
    denoise_files,
    embed_split,
    encode_split,
    feature_maps_file,
    reconstruct_files,
    sample_files,
    segment_files,
    upscale_files,
)
from caekit.workflows.stacked import train_stacked


def train(
    config: RunConfig | dict[str, Any] | str | Path | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    resume: str | Path | None = None,
    on_epoch_end: EpochHook | None = None,
    write_run: bool = True,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train a model from a config (object, mapping or YAML path) and leave a run folder with pictures.

    ``resume`` continues the run folder given (its config.yaml, overridden by ``overrides``, e.g. more epochs or
    another learning rate, which the restored optimiser then uses). ``callbacks`` (``caekit.Callback``) hear of
    the run's start, every epoch, every checkpoint and its end; ``on_epoch_end(epoch, row)`` is the short form.
    """
    options: dict[str, Any] = {"on_epoch_end": on_epoch_end, "write_run": write_run, "callbacks": callbacks}
    if resume is None and distributed.elastic():  # torchrun re-runs the same command: its config, the old run folder
        cfg = resolve_config(config, overrides)
        return train_run(cfg, resume=_elastic_resume(cfg), **options)
    if resume is not None:
        config = load_config(RunFolder.existing(resume).config_path)
    return train_run(resolve_config(config, overrides), resume=resume, **options)


def _elastic_resume(cfg: RunConfig) -> Path | None:
    """In an elastic job (torchrun --max-restarts), the named run's folder once it holds a checkpoint: every start
    and restart of the group goes on from its last finished epoch instead of starting over under another name."""
    if cfg.name is None:
        raise ConfigError(
            "an elastic run (torchrun --max-restarts) needs a fixed run name, --name NAME, to resume after a restart"
        )
    folder = Path(cfg.runs_dir) / cfg.name
    # a checkpoint, not the folder: rank 0 makes the folder as it starts, so only a finished epoch is the same to every rank
    return folder if (folder / "checkpoints" / "last.safetensors").is_file() else None


__all__ = [
    "CompareConfig",
    "TrainResult",
    "classify",
    "classify_run",
    "cluster_split",
    "denoise_files",
    "embed_split",
    "encode",
    "encode_split",
    "encoder_838",
    "evaluate_run",
    "feature_maps_file",
    "load",
    "read_images",
    "reconstruct",
    "reconstruct_files",
    "resolve_config",
    "run_compare",
    "run_splits",
    "sample",
    "sample_files",
    "segment_files",
    "summary_markdown",
    "train",
    "train_stacked",
    "upscale_files",
]
