"""Hyper-parameter search: spaces, sampling, validation, ranking, and real searches whose trials are run folders."""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from caekit import api
from caekit.errors import ConfigError
from caekit.runs import RunFolder
from caekit.search import (
    Param,
    Trial,
    grid_points,
    parse_search,
    plot_search,
    random_points,
    results_table,
    search,
    sort_trials,
    trial_value,
)

BASE = {
    "model": {"name": "cae28"},
    "data": {"name": "digits", "image_size": 16, "limit": 80, "val_fraction": 0.2},
    "train": {"epochs": 1, "batch_size": 32},
}


def test_log_range_is_uniform_in_log_space() -> None:
    param = Param(low=1e-4, high=1e-2, log=True)
    values = np.array([p["lr"] for p in random_points({"lr": param}, 4000, seed=1)])
    assert values.min() >= 1e-4 and values.max() <= 1e-2
    # Log-uniform: a quarter of the draws below 10^-3.5, half below 10^-3 (a plain uniform would put 10% there).
    assert np.mean(values < 1e-3) == pytest.approx(0.5, abs=0.04)
    assert np.mean(values < 10**-3.5) == pytest.approx(0.25, abs=0.04)


def test_int_ranges_cover_both_ends_and_stay_whole() -> None:
    param = Param(low=8, high=64, log=True)
    assert param.type == "int"
    values = [p["c"] for p in random_points({"c": param}, 3000, seed=0)]
    assert all(isinstance(v, int) and 8 <= v <= 64 for v in values)
    assert {8, 64} <= set(values)
    assert random_points({"c": param}, 5, seed=3) == random_points({"c": param}, 5, seed=3)  # the seed decides


def test_grid_is_the_cartesian_product() -> None:
    space = {"optim.lr": Param(low=1e-4, high=1e-2, log=True), "model.args.upsample": Param(values=["max", "nearest"])}
    points = grid_points(space)
    assert len(points) == 6
    assert sorted({p["optim.lr"] for p in points}) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert Param(low=1, high=3, num=7).grid() == [1, 2, 3]  # an int range never repeats a point


def test_range_type_follows_how_it_was_written() -> None:
    search, _ = parse_search(
        {
            "base": BASE,
            "space": {"optim.lr": {"low": 1.0, "high": 3.0}, "model.args.bottleneck.code_size": {"low": 4, "high": 32}},
        }
    )
    assert search.space["optim.lr"].type == "float"
    assert search.space["model.args.bottleneck.code_size"].type == "int"


@pytest.mark.parametrize(
    "space, message",
    [
        ({"optim.lrr": {"low": 1e-4, "high": 1e-2}}, "lrr"),
        ({"optim.lr": {"low": 1e-2, "high": 1e-4}}, "below"),
        ({"optim.lr": {"low": 0.0, "high": 1.0, "log": True}}, "log range"),
        ({"optim.lr": {"values": [1e-3], "low": 1e-4, "high": 1e-2}}, "either"),
        ({"optim.lr": {"low": -1.0, "high": 1.0}}, "optim.lr"),  # negative learning rates fail before any trial runs
        ({}, "space is empty"),
    ],
)
def test_bad_search_files_fail_before_training(space: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_search({"base": BASE, "space": space})


def test_base_file_is_relative_to_the_search_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    found, base = parse_search({"base": "base.yaml", "space": {"optim.lr": {"values": [0.1]}}}, tmp_path)
    assert base.model.name == "cae28" and found.method == "random"
    with pytest.raises(ConfigError, match="prune needs method: optuna"):
        parse_search({"base": "base.yaml", "prune": True, "space": {"optim.lr": {"values": [0.1]}}}, tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        parse_search({"base": "missing.yaml", "space": {"optim.lr": {"values": [0.1]}}}, tmp_path)


def test_trial_value_takes_the_best_epoch_or_a_test_metric(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.write_metrics(
        [
            {"epoch": 1, "val_loss": 0.5, "val_psnr": 12.0},
            {"epoch": 2, "val_loss": 0.3, "val_psnr": 15.0},
            {"epoch": 3, "val_loss": 0.4, "val_psnr": 14.0},
        ]
    )
    run.write_json("results.json", {"test": {"psnr": 14.5}})
    assert trial_value(tmp_path, "val_loss", "min") == (pytest.approx(0.3), 3)
    assert trial_value(tmp_path, "val_psnr", "max") == (pytest.approx(15.0), 3)
    assert trial_value(tmp_path, "test_psnr", "max") == (pytest.approx(14.5), 3)
    assert trial_value(tmp_path, "val_accuracy", "max") == (None, 3)


def test_ranking_table_and_plot(tmp_path: Path) -> None:
    trials = [
        Trial(0, {"optim.lr": 1e-3, "u": "max"}, "ok", 0.2, "r0"),
        Trial(1, {"optim.lr": 1e-2, "u": "nearest"}, "diverged", None, "r1"),
        Trial(2, {"optim.lr": 1e-4, "u": "nearest"}, "ok", 0.1, "r2"),
    ]
    assert [t.number for t in sort_trials(trials, "min")] == [2, 0, 1]
    assert [t.number for t in sort_trials(trials, "max")] == [0, 2, 1]
    lines = results_table(sort_trials(trials, "min"), ["optim.lr", "u"], "val_loss").splitlines()
    assert lines[2].startswith("| 1 | 2 | 0.0001 | nearest | 0.1 | ok")
    assert lines[4].startswith("| - | 1 |") and "diverged" in lines[4]
    space = {"optim.lr": Param(low=1e-4, high=1e-2, log=True), "u": Param(values=["max", "nearest"])}
    picture = plot_search(trials, space, "val_loss", "min", tmp_path / "search.png")
    from PIL import Image

    assert picture is not None and Image.open(picture).size[0] > 400


def _write_search(tmp_path: Path, **settings: object) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "runs_dir": str(tmp_path / "runs"), "base": BASE, **settings}, sort_keys=False))
    return path


@pytest.mark.slow
def test_random_search_in_two_processes_leaves_run_folders_and_a_table(tmp_path: Path) -> None:
    path = _write_search(
        tmp_path,
        method="random",
        trials=2,
        parallel=2,
        seed=4,
        space={
            "optim.lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "model.args.bottleneck.code_size": {"low": 4, "high": 32, "log": True},
        },
    )
    seen: list[Trial] = []
    result = search(path, report=seen.append)
    assert result.folder == tmp_path / "runs" / "s" and len(seen) == 2
    rows = list(csv.DictReader(result.csv.open()))
    values = [float(r["val_loss"]) for r in rows]
    assert values == sorted(values) and [r["rank"] for r in rows] == ["1", "2"]
    expected = random_points(
        {"optim.lr": Param(low=1e-4, high=1e-2, log=True), "model.args.bottleneck.code_size": Param(low=4, high=32, log=True)},
        2,
        seed=4,
    )
    for trial in result.trials:
        assert trial.status == "ok" and trial.params == expected[trial.number]
        model, meta = api.load(trial.run)  # every trial is a normal run folder with a loadable model
        assert model.code_size == trial.params["model.args.bottleneck.code_size"]
        assert meta["model"]["args"]["bottleneck"]["code_size"] == trial.params["model.args.bottleneck.code_size"]
        config = yaml.safe_load((Path(trial.run) / "config.yaml").read_text())
        assert math.isclose(config["optim"]["lr"], trial.params["optim.lr"])
        assert trial.value == pytest.approx(min(r["val_loss"] for r in RunFolder(trial.run).read_metrics()))
    assert result.plot is not None and result.plot.is_file()
    assert "| rank | trial | optim.lr | model.args.bottleneck.code_size | val_loss |" in result.table.read_text()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="optuna is not installed (pip install optuna)")
def test_optuna_search_with_pruning(tmp_path: Path) -> None:
    path = _write_search(
        tmp_path,
        method="optuna",
        trials=3,
        parallel=1,
        prune=True,
        metric="val_psnr",
        space={"optim.lr": {"low": 1e-4, "high": 1e-2, "log": True}},
    )
    result = search(path)
    assert result.mode == "max"  # inferred from the metric's name
    assert len(result.trials) == 3 and (result.folder / "optuna.journal").is_file()
    finished = [t for t in result.trials if t.value is not None]
    assert finished and [t.value for t in finished] == sorted((t.value for t in finished), reverse=True)
    assert all(1e-4 <= t.params["optim.lr"] <= 1e-2 and Path(t.run, "config.yaml").is_file() for t in result.trials)


def test_cli_search_reports_user_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from caekit.cli import main

    path = _write_search(tmp_path, space={"optim.lrr": {"low": 1e-4, "high": 1e-2}})
    for argv, message in (
        (["search", str(tmp_path / "none.yaml")], "does not exist"),
        (["search", str(path)], "space.optim.lrr"),
        (["search", str(path), "--parallel", "many"], "--parallel 'many'"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("caekit: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing ran
