"""Elastic jobs (torchrun --max-restarts): a start or restart of the group goes on from the named run's last
checkpoint by itself, since torchrun re-runs the same command line. The two-node kill -9 harness that exercises this
through torchrun is ``benchmarks/scale_elastic.py`` (it needs more than two quiet cores to be reliable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from caekit import api
from caekit.errors import ConfigError


def _config(runs: Path, epochs: int, name: str | None = "run") -> dict:
    return {
        "name": name,
        "runs_dir": str(runs),
        "model": {"name": "cae28", "args": {"upsample": "nearest"}},
        "data": {"name": "digits", "image_size": 16, "limit": 100},
        "train": {"epochs": epochs, "batch_size": 32, "device": "cpu", "progress": False, "verbose": True},
    }


def test_an_elastic_restart_resumes_the_named_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.train(_config(tmp_path, 1))  # the first start: a fresh run
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "3")  # what torchrun puts in the environment of an elastic job
    capsys.readouterr()
    again = api.train(_config(tmp_path, 2))  # the same command line after a restart
    assert again.run is not None and again.run.path == tmp_path / "run"  # not run-2
    assert [int(r["epoch"]) for r in again.run.read_metrics()] == [1, 2]  # went on after epoch 1
    assert f"resumed {tmp_path / 'run'} after epoch 1" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="needs a fixed run name"):
        api.train(_config(tmp_path, 1, name=None))


def test_without_torchrun_a_taken_name_is_a_new_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHELASTIC_MAX_RESTARTS", raising=False)
    api.train(_config(tmp_path, 1))
    second = api.train(_config(tmp_path, 1))
    assert second.run is not None and second.run.path.name == "run-2"  # nothing of the first run is touched
