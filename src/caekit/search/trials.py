"""Running a search: one trial, the process-pool and Optuna executors, run_search and search."""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from caekit.config import RunConfig, dump_config, read_mapping
from caekit.errors import CaekitError, ConfigError, TrainingDiverged
from caekit.fileio import atomic_write_text
from caekit.runs import RunFolder
from caekit.search.results import SearchResult, Trial, write_results
from caekit.search.space import Param, SearchConfig, grid_points, parse_search, random_points

# ------------------------------------------------------------------------------------------- planning


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def plan_workers(search: SearchConfig, base: RunConfig, trials: int) -> tuple[int, int]:
    """(processes, torch threads per process): one trial per core on CPU, trials one after another on a GPU."""
    import torch

    cores = cpu_cores()
    uses_gpu = base.train.device.startswith("cuda") or (base.train.device == "auto" and torch.cuda.is_available())
    workers = (1 if uses_gpu else cores) if search.parallel == "auto" else search.parallel
    workers = max(1, min(workers, trials))
    threads = search.threads or max(1, cores // workers)
    return workers, threads


# ------------------------------------------------------------------------------------------- one trial


def trial_value(run: str | Path, metric: str, mode: str) -> tuple[float | None, int]:
    """The trial's score: the best epoch's value of a metrics.csv column, or ``test_<name>`` from results.json."""
    folder = RunFolder(run)
    rows = folder.read_metrics()
    if metric.startswith("test_"):
        value = folder.read_json("results.json").get("test", {}).get(metric[len("test_") :])
        return (float(value) if value is not None else None), len(rows)
    values = [row[metric] for row in rows if metric in row and math.isfinite(row[metric])]
    if not values:
        return None, len(rows)
    return (min(values) if mode == "min" else max(values)), len(rows)


def _trial_overrides(folder: Path, number: int, params: dict[str, Any]) -> dict[str, Any]:
    return {**params, "name": f"trial-{number:03d}", "runs_dir": str(folder), "train.progress": False}


def run_trial(
    base: dict[str, Any],
    folder: str,
    number: int,
    params: dict[str, Any],
    metric: str,
    mode: str,
    threads: int | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> Trial:
    """Train one trial into ``folder/trial-NNN``; a diverging or failing trial is recorded, not raised."""
    import torch

    from caekit.plugins import load_plugins

    load_plugins()  # a trial in a process of its own: the plug-ins the command line named come through $CAEKIT_PLUGINS

    from caekit.config import resolve_config
    from caekit.runner import train_run

    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    status, error = "ok", ""
    log = io.StringIO()  # per-epoch lines of parallel trials would interleave: each keeps its own in train.log
    try:
        with contextlib.redirect_stdout(log):
            train_run(resolve_config(base, _trial_overrides(Path(folder), number, params)), on_epoch_end=on_epoch_end)
    except CaekitError as exc:
        status, error = ("diverged" if isinstance(exc, TrainingDiverged) else "failed"), str(exc)
    except Exception as exc:
        if type(exc).__name__ == "TrialPruned":
            status = "pruned"
        else:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
    run = str(Path(folder) / f"trial-{number:03d}")
    if Path(run).is_dir():
        atomic_write_text(Path(run) / "train.log", log.getvalue() + (f"{status}: {error}\n" if error else ""))
    value, epochs = trial_value(run, metric, mode) if Path(run).is_dir() else (None, 0)
    return Trial(number, params, status, value, run, epochs, time.perf_counter() - start, error)


# ------------------------------------------------------------------------------------------- the search


def _new_folder(search: SearchConfig, base: RunConfig, stem: str) -> Path:
    runs_dir = Path(search.runs_dir or base.runs_dir)
    return RunFolder.create(runs_dir, search.name, f"search-{stem}").path


def run_search(
    search: SearchConfig, base: RunConfig, stem: str = "search", report: Callable[[Trial], None] | None = None
) -> SearchResult:
    """Run every trial (in parallel processes where cores allow) and write the results table and plot."""
    mode = search.direction
    folder = _new_folder(search, base, stem)
    atomic_write_text(
        folder / "search.yaml",
        yaml.safe_dump(
            {**search.model_dump(mode="json", exclude={"base"}, exclude_none=True), "base": yaml.safe_load(dump_config(base))},
            sort_keys=False,
        ),
    )
    if search.method == "optuna":
        trials = _optuna_search(search, base, folder, report)
    else:
        points = grid_points(search.space) if search.method == "grid" else random_points(search.space, search.trials, search.seed)
        trials = _run_points(points, search, base, folder, report)
    return write_results(folder, trials, search, mode)


def _run_points(
    points: list[dict[str, Any]], search: SearchConfig, base: RunConfig, folder: Path, report: Callable[[Trial], None] | None
) -> list[Trial]:
    base_data, mode = base.model_dump(mode="json"), search.direction
    workers, threads = plan_workers(search, base, len(points))
    trials: list[Trial] = []
    if workers == 1:
        for number, params in enumerate(points):
            trials.append(run_trial(base_data, str(folder), number, params, search.metric, mode))
            if report:
                report(trials[-1])
        return trials
    # spawn, not fork: a forked copy of a process that already ran torch's thread pools can deadlock.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending: set[Future] = {
            pool.submit(run_trial, base_data, str(folder), n, p, search.metric, mode, threads) for n, p in enumerate(points)
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                trials.append(future.result())
                if report:
                    report(trials[-1])
    return sorted(trials, key=lambda t: t.number)


# ------------------------------------------------------------------------------------------- optuna


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("method: optuna needs the optuna package (pip install optuna); or use method: random") from None
    return optuna


def _optuna_storage(folder: Path) -> Any:
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))


def _suggest(trial: Any, key: str, param: Param) -> Any:
    if param.values is not None:
        return trial.suggest_categorical(key, param.values)
    if param.type == "int":
        return trial.suggest_int(key, int(param.low), int(param.high), log=param.log)  # type: ignore[arg-type]
    return trial.suggest_float(key, param.low, param.high, log=param.log)


def _optuna_worker(
    search_data: dict[str, Any],
    base_data: dict[str, Any],
    folder: str,
    mode: str,
    n_trials: int,
    worker: int,
    threads: int | None,
) -> None:
    """One process of an Optuna search: it asks the shared study (a journal file) for trials until its share is done."""
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = SearchConfig.model_validate(search_data)
    study = optuna.load_study(
        study_name="caekit",
        storage=_optuna_storage(Path(folder)),
        sampler=optuna.samplers.TPESampler(seed=search.seed + worker),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2) if search.prune else optuna.pruners.NopPruner(),
    )

    def objective(trial: Any) -> float:
        params = {key: _suggest(trial, key, param) for key, param in search.space.items()}

        def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
            if search.metric in row:
                trial.report(row[search.metric], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        result = run_trial(base_data, folder, trial.number, params, search.metric, mode, threads, on_epoch_end)
        trial.set_user_attr("run", result.run)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("seconds", result.seconds)
        if result.status == "pruned":
            raise optuna.TrialPruned()
        if result.value is None:
            trial.set_user_attr("error", result.error)
            return float("nan")  # optuna records a failed trial and carries on
        return result.value

    study.optimize(objective, n_trials=n_trials)


def _optuna_search(search: SearchConfig, base: RunConfig, folder: Path, report: Callable[[Trial], None] | None) -> list[Trial]:
    base_data, mode = base.model_dump(mode="json"), search.direction
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(
        study_name="caekit", storage=_optuna_storage(folder), direction="minimize" if mode == "min" else "maximize"
    )
    workers, threads = plan_workers(search, base, search.trials)
    shares = [search.trials // workers + (i < search.trials % workers) for i in range(workers)]
    data = search.model_dump(mode="json")
    if workers == 1:
        _optuna_worker(data, base_data, str(folder), mode, search.trials, 0, None)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for future in [
                pool.submit(_optuna_worker, data, base_data, str(folder), mode, n, i, threads) for i, n in enumerate(shares)
            ]:
                future.result()
    study = optuna.load_study(study_name="caekit", storage=_optuna_storage(folder))
    trials = []
    for t in study.trials:
        run = t.user_attrs.get("run", str(folder / f"trial-{t.number:03d}"))
        value, epochs = trial_value(run, search.metric, mode) if Path(run).is_dir() else (None, 0)
        status = t.user_attrs.get("status", "pruned" if t.state.name == "PRUNED" else t.state.name.lower())
        trial = Trial(
            t.number, dict(t.params), status, value, run, epochs, t.user_attrs.get("seconds", 0.0), t.user_attrs.get("error", "")
        )
        trials.append(trial)
        if report:
            report(trial)
    return trials


def search(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    base_overrides: dict[str, Any] | list[str] | None = None,
    report: Callable[[Trial], None] | None = None,
) -> SearchResult:
    """Run the search a YAML file describes.

    ``overrides`` replace top-level search settings (trials, parallel, method ...); ``base_overrides`` replace dotted
    fields of the base run config (``{"data.root": "/data"}``) for every trial.
    """
    path = Path(path)
    data = read_mapping(path, "search file", "base:, space:, method: ...")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    search_config, base = parse_search(data, path.parent, str(path), base_overrides)
    return run_search(search_config, base, path.stem, report)
