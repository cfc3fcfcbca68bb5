"""Callbacks: what the engine tells the code around it, and the experiment trackers that listen.

A ``Callback`` overrides any of its hooks; the engine calls them in this order on every process (the run assembly
gives the trackers to rank 0 only): ``on_train_start`` once, then per epoch ``on_epoch_start`` and
``on_epoch_end`` (with the epoch's row of metrics, as ``metrics.csv`` has it), ``on_checkpoint`` after each
checkpoint written (on rank 0, which writes them), ``on_train_end`` with the whole history, and ``close`` in any
case, also after an error, a pruned trial or Ctrl-C. A resumed run goes on in the same tracker run. ``train.loggers`` in a config names the trackers:
TensorBoard (``RUN/tb``, the default), MLflow (a local file store in ``RUN/mlruns``) and Weights & Biases (offline,
in ``RUN/wandb``; ``wandb sync`` uploads it later). MLflow and W&B are the optional extra ``caekit[track]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from caekit.errors import ConfigError

LOGGERS = ("tensorboard", "mlflow", "wandb")


class Callback:
    """A no-op for every hook; override the ones you need."""

    def on_train_start(self, epochs: int) -> None:
        """Before the first epoch (of this start: a resumed run starts again)."""

    def on_epoch_start(self, epoch: int) -> None:
        """Before epoch ``epoch`` (counted from 1)."""

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        """After epoch ``epoch``, with its metrics (train_*, val_*, lr, seconds, images_per_s)."""

    def on_checkpoint(self, path: Path, best: bool) -> None:
        """After a checkpoint is written (``best``: the best so far, else the last)."""

    def on_train_end(self, history: list[dict[str, float]]) -> None:
        """After the last epoch or an early stop."""

    def close(self) -> None:
        """Last, however training ended: release what the callback holds."""


class EpochEnd(Callback):
    """A plain ``(epoch, row)`` function as a callback (``caekit.train(on_epoch_end=...)``)."""

    def __init__(self, hook: Callable[[int, dict[str, float]], None]) -> None:
        self.hook = hook

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        self.hook(epoch, row)


def _scalars(row: dict[str, float]) -> dict[str, float]:
    """A row's metrics as tracker names: ``train_loss`` -> ``train/loss``; the epoch is the step, not a metric."""
    return {(k.replace("_", "/", 1) if k.startswith(("train_", "val_")) else k): float(v) for k, v in row.items() if k != "epoch"}


class TensorBoardLogger(Callback):
    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder / "tb"))

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        for key, value in _scalars(row).items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowLogger(Callback):
    """One MLflow run in a file store inside the run folder (``mlflow ui --backend-store-uri RUN/mlruns``)."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        import mlflow

        with _file_store_allowed():  # MLflow 3 keeps its file store in maintenance: still the one needing no database
            self.client = mlflow.MlflowClient(tracking_uri=(folder / "mlruns").resolve().as_uri())
            name = "caekit"
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            earlier = self.client.search_runs([experiment_id], max_results=1)  # a resumed run: its own store's run
        if earlier:
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(experiment_id, run_name=folder.name).info.run_id
            flat = {k: str(v)[:500] for k, v in _flatten(config).items()}  # MLflow keeps parameters as short strings
            for key, value in flat.items():
                self.client.log_param(self.run_id, key, value)
        self.status = "KILLED"

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        for key, value in _scalars(row).items():
            self.client.log_metric(self.run_id, key, value, step=epoch)

    def on_train_end(self, history: list[dict[str, float]]) -> None:
        self.status = "FINISHED"

    def close(self) -> None:
        if self.status:
            self.client.set_terminated(self.run_id, status=self.status)
            self.status = ""


class WandbLogger(Callback):
    """A Weights & Biases run in offline mode, written under ``RUN/wandb`` (``wandb sync`` uploads it)."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        import wandb

        self.run: Any
        run_id = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]  # one W&B run a run folder
        self.run = wandb.init(
            project="caekit",
            id=run_id,
            resume="allow",
            name=folder.name,
            dir=str(folder),
            mode="offline",
            config=config,
            reinit="create_new",
        )
        self.exit_code = 1

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        self.run.log({**_scalars(row), "epoch": epoch}, step=epoch)

    def on_train_end(self, history: list[dict[str, float]]) -> None:
        self.exit_code = 0

    def close(self) -> None:
        if self.run is not None:
            self.run.finish(exit_code=self.exit_code)
            self.run = None


@contextlib.contextmanager
def _file_store_allowed() -> Iterator[None]:
    """``MLFLOW_ALLOW_FILE_STORE=true`` while the client is made, and the variable as it was afterwards."""
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def make_loggers(names: Sequence[str], folder: Path, config: dict[str, Any]) -> list[Callback]:
    """The trackers ``train.loggers`` names, writing into the run folder; a missing extra is one line."""
    kinds: dict[str, type[Callback]] = {"tensorboard": TensorBoardLogger, "mlflow": MLflowLogger, "wandb": WandbLogger}
    loggers = []
    for name in names:
        try:
            loggers.append(kinds[name](folder, config))  # type: ignore[call-arg]
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"train.loggers names {name}, but {exc.name} is not installed; pip install 'caekit[track]'"
            ) from None
    return loggers


__all__ = ["LOGGERS", "Callback", "EpochEnd", "MLflowLogger", "TensorBoardLogger", "WandbLogger", "make_loggers"]
