"""Callbacks and trackers: a user's callback hears every event in order; MLflow and W&B record the run offline."""

from __future__ import annotations

from pathlib import Path

import pytest

import caekit
from caekit.errors import ConfigError
from caekit.training import callbacks as callbacks_module

TINY = {
    "model": {"name": "cae28", "args": {"input_shape": [1, 8, 8]}},
    "data": {"name": "digits", "limit": 200},
    "train": {"epochs": 2, "batch_size": 32, "progress": False, "verbose": False},
}


class Recorder(caekit.Callback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_train_start(self, epochs: int) -> None:
        self.events.append(("start", epochs))

    def on_epoch_start(self, epoch: int) -> None:
        self.events.append(("epoch", epoch))

    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        self.events.append(("end", epoch, round(row["train_loss"], 6)))

    def on_checkpoint(self, path: Path, best: bool) -> None:
        self.events.append(("saved", path.name, best))

    def on_train_end(self, history: list[dict[str, float]]) -> None:
        self.events.append(("done", len(history)))


def test_a_callback_hears_every_event_in_order(tmp_path: Path) -> None:
    recorder = Recorder()
    result = caekit.train({**TINY, "runs_dir": str(tmp_path), "name": "heard"}, callbacks=[recorder])
    losses = [round(row["train_loss"], 6) for row in result.history]
    names = [e[0] for e in recorder.events]
    assert names[0] == "start" and names[-1] == "done" and recorder.events[0] == ("start", 2)
    assert [e for e in recorder.events if e[0] == "end"] == [("end", 1, losses[0]), ("end", 2, losses[1])]
    first_epoch = recorder.events[1 : names.index("epoch", 2)]
    assert first_epoch[0] == ("epoch", 1) and ("saved", "last.safetensors", False) in first_epoch
    assert ("saved", "best.safetensors", True) in first_epoch  # the first epoch is always the best so far
    assert recorder.events[-1] == ("done", 2)
    assert (tmp_path / "heard" / "tb").is_dir()  # TensorBoard, the default tracker, is a callback too


def test_mlflow_records_the_run_in_a_file_store_inside_the_run_folder(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    config = {**TINY, "runs_dir": str(tmp_path), "name": "tracked", "train": {**TINY["train"], "loggers": ["mlflow"]}}
    result = caekit.train(config)
    store = tmp_path / "tracked" / "mlruns"
    client = mlflow.MlflowClient(tracking_uri=store.resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("caekit").experiment_id])
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, round(m.value, 6)) for m in history] == [
        (i + 1, round(r["train_loss"], 6)) for i, r in enumerate(result.history)
    ]
    assert run.data.params["model.name"] == "cae28" and run.data.params["train.epochs"] == "2"
    assert not (tmp_path / "tracked" / "tb").exists()  # only the trackers named
    caekit.train(config, overrides={"train.epochs": 3}, resume=tmp_path / "tracked")  # goes on in the same MLflow run
    (again,) = client.search_runs([client.get_experiment_by_name("caekit").experiment_id])
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3]


class Boom(caekit.Callback):
    def on_epoch_end(self, epoch: int, row: dict[str, float]) -> None:
        raise KeyboardInterrupt


def test_a_tracker_run_is_closed_when_training_is_interrupted(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    config = {**TINY, "runs_dir": str(tmp_path), "name": "cut", "train": {**TINY["train"], "loggers": ["mlflow"]}}
    with pytest.raises(KeyboardInterrupt):
        caekit.train(config, callbacks=[Boom()])
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "cut" / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("caekit").experiment_id])
    assert run.info.status == "KILLED"  # not left RUNNING


def test_wandb_writes_an_offline_run_inside_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))  # nothing of W&B's own goes to the home folder
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    config = {**TINY, "runs_dir": str(tmp_path), "name": "zebra-7", "train": {**TINY["train"], "loggers": ["wandb"]}}
    caekit.train(config)
    (run_dir,) = (tmp_path / "zebra-7" / "wandb").glob("offline-run-*")
    (log,) = run_dir.glob("*.wandb")  # W&B's own record log, which `wandb sync` uploads
    records = log.read_bytes()
    assert records.count(b"train/loss") >= 2 and b"val/psnr" in records  # one history record an epoch at least
    assert b"zebra-7" in records and b"cae28" in records  # the run name and its config went in too


def test_a_tracker_that_is_not_installed_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Missing(callbacks_module.Callback):
        def __init__(self, folder: Path, config: dict) -> None:
            raise ModuleNotFoundError("No module named 'mlflow'", name="mlflow")

    monkeypatch.setattr(callbacks_module, "MLflowLogger", Missing)
    with pytest.raises(
        ConfigError, match=r"train.loggers names mlflow, but mlflow is not installed; pip install 'caekit\[track\]'"
    ):
        callbacks_module.make_loggers(["mlflow"], tmp_path, {})
