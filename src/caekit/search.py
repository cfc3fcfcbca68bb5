"""Hyper-parameter search: grid, random or Optuna over any dotted config field; every trial is a normal run folder.

A search file (YAML) holds a base run config and a space::

    name: search-mnist                  # folder under runs_dir (default: search-<file stem>-<date>-<time>)
    runs_dir: runs                      # default: the base config's runs_dir
    base: configs/mnist.yaml            # a run config file (relative to this file) or the config itself, inline
    method: random                      # grid | random | optuna (TPE sampler; needs `pip install optuna`)
    trials: 8                           # random and optuna; a grid runs every combination
    seed: 0                             # drives the sampler; every trial trains with the base config's seed
    metric: val_loss                    # a metrics.csv column (best epoch) or test_<name> from results.json
    mode: min                           # min or max (default: max for psnr/ssim/accuracy-like names, else min)
    parallel: auto                      # trials at once: auto = one per CPU core (one on a GPU), or a number
    prune: false                        # optuna only: stop trials whose per-epoch metric trails the median
    space:
      optim.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      model.args.bottleneck.code_size: {low: 8, high: 128, log: true, type: int}
      model.args.upsample: {values: [max, nearest, transposed]}

A range is sampled uniformly (on a log scale with ``log: true``); on a grid it becomes ``num`` points (default 3).
The search folder gets ``trial-NNN/`` run folders, ``results.csv`` and ``results.md`` (sorted by the metric) and
``search.png`` (the metric against each searched parameter).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from caekit.config import RunConfig, dump_config, load_config, parse_config, read_mapping, with_overrides
from caekit.errors import CaekitError, ConfigError, TrainingDiverged, validate_model
from caekit.fileio import atomic_write_text
from caekit.runs import RunFolder

MAXIMISED = ("psnr", "ssim", "acc", "f1", "nmi", "ari", "auc", "precision", "recall", "iou", "dice")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    """One searched field: a list of ``values``, or a ``low``..``high`` range (float or int, optionally log)."""

    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    type: Literal["float", "int"] | None = None
    num: PositiveInt = 3

    @model_validator(mode="after")
    def _check(self) -> Param:
        if (self.values is None) == (self.low is None or self.high is None):
            raise ValueError("give either values: [...] or both low and high")
        if self.values is not None and not self.values:
            raise ValueError("values is empty")
        if self.low is not None and self.high is not None:
            if self.low >= self.high:
                raise ValueError(f"low {self.low} must be below high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
            if self.type is None:
                self.type = "int" if float(self.low).is_integer() and float(self.high).is_integer() else "float"
        return self

    def cast(self, value: float) -> int | float:
        return int(round(value)) if self.type == "int" else float(value)

    def sample(self, rng: np.random.Generator) -> Any:
        if self.values is not None:
            return self.values[int(rng.integers(len(self.values)))]
        low, high = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.type == "int" and not self.log:
            return int(rng.integers(int(low), int(high) + 1))
        if self.log:
            value = math.exp(rng.uniform(math.log(low), math.log(high + (0.4999 if self.type == "int" else 0))))
        else:
            value = rng.uniform(low, high)
        return self.cast(min(value, high))

    def grid(self) -> list[Any]:
        if self.values is not None:
            return list(self.values)
        points = (np.geomspace if self.log else np.linspace)(self.low, self.high, self.num)
        return list(dict.fromkeys(self.cast(v) for v in points))  # int ranges may collapse to fewer points


class SearchConfig(_Strict):
    name: str | None = None
    runs_dir: str | None = None
    base: str | dict[str, Any] = Field(default_factory=dict)
    method: Literal["grid", "random", "optuna"] = "random"
    trials: PositiveInt = 8
    seed: int = 0
    metric: str = "val_loss"
    mode: Literal["min", "max"] | None = None
    parallel: PositiveInt | Literal["auto"] = "auto"
    threads: PositiveInt | None = None
    prune: bool = False
    space: dict[str, Param]

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if not self.space:
            raise ValueError("space is empty: name at least one dotted config field to search")
        if self.prune and self.method != "optuna":
            raise ValueError("prune needs method: optuna")
        return self

    @property
    def direction(self) -> str:
        if self.mode:
            return self.mode
        return "max" if any(word in self.metric.lower() for word in MAXIMISED) else "min"


@dataclass
class Trial:
    number: int
    params: dict[str, Any]
    status: str  # ok | diverged | pruned | failed
    value: float | None
    run: str
    epochs: int = 0
    seconds: float = 0.0
    error: str = ""


@dataclass
class SearchResult:
    folder: Path
    trials: list[Trial]  # sorted best first; trials without a value last
    metric: str
    mode: str
    table: Path
    csv: Path
    plot: Path | None

    @property
    def best(self) -> Trial | None:
        return self.trials[0] if self.trials and self.trials[0].value is not None else None


# ------------------------------------------------------------------------------------------- reading the file


def load_search(path: str | Path) -> tuple[SearchConfig, RunConfig]:
    """The search settings and its resolved base run config (a ``base`` path is relative to the search file)."""
    path = Path(path)
    return parse_search(read_mapping(path, "search file", "base:, space:, method: ..."), path.parent, str(path))


def parse_search(data: dict[str, Any], here: Path = Path("."), source: str = "search",
                 base_overrides: dict[str, Any] | list[str] | None = None) -> tuple[SearchConfig, RunConfig]:
    """Validate a search mapping; ``base_overrides`` (dotted fields) change its base run config, e.g. data.root."""
    space = data.get("space") or {}
    if isinstance(space, dict):
        space = {k: dict(v) if isinstance(v, dict) else v for k, v in space.items()}
        data = {**data, "space": space}
        for spec in space.values():  # a range written with a decimal point (1.0 .. 10.0) stays float
            if isinstance(spec, dict) and "type" not in spec and any(isinstance(spec.get(k), float) for k in ("low", "high")):
                spec["type"] = "float"
    search = validate_model(SearchConfig, data, source)
    if isinstance(search.base, str):
        base_path = Path(search.base)
        if not base_path.is_absolute() and (here / base_path).is_file():
            base_path = here / base_path
        base = load_config(base_path)
    else:
        base = parse_config(search.base, f"{source}: base")
    if base_overrides:
        base = with_overrides(base, base_overrides)
    # Every field must exist and take its values: one bad name fails now, not after hours of trials.
    for key, param in search.space.items():
        for value in (param.grid() if param.values is not None else [param.cast(param.low), param.cast(param.high)]):  # type: ignore[arg-type]
            try:
                _check_point(with_overrides(base, {key: value}))
            except CaekitError as exc:
                raise ConfigError(f"{source}: space.{key} = {value!r}: {exc}") from None
    return search, base


def _check_point(config: RunConfig) -> None:
    """Build the model on the meta device (no memory, no data) so that a misspelt model argument fails early."""
    import torch

    from caekit.models.registry import create_model

    try:
        with torch.device("meta"):
            create_model(config.model.name, **config.model.args)
    except CaekitError:
        raise
    except Exception:  # noqa: BLE001 - some builders need the data's shape; api.train supplies it, so let the trial tell
        pass


# ------------------------------------------------------------------------------------------- points to try


def grid_points(space: dict[str, Param]) -> list[dict[str, Any]]:
    keys = list(space)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k].grid() for k in keys))]


def random_points(space: dict[str, Param], n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{key: param.sample(rng) for key, param in space.items()} for _ in range(n)]


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
        value = folder.read_json("results.json").get("test", {}).get(metric[len("test_"):])
        return (float(value) if value is not None else None), len(rows)
    values = [row[metric] for row in rows if metric in row and math.isfinite(row[metric])]
    if not values:
        return None, len(rows)
    return (min(values) if mode == "min" else max(values)), len(rows)


def _trial_overrides(folder: Path, number: int, params: dict[str, Any]) -> dict[str, Any]:
    return {**params, "name": f"trial-{number:03d}", "runs_dir": str(folder), "train.progress": False}


def run_trial(base: dict[str, Any], folder: str, number: int, params: dict[str, Any], metric: str, mode: str,
              threads: int | None = None, on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> Trial:
    """Train one trial into ``folder/trial-NNN``; a diverging or failing trial is recorded, not raised."""
    import torch

    from caekit.api import train

    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    status, error = "ok", ""
    log = io.StringIO()  # per-epoch lines of parallel trials would interleave: each keeps its own in train.log
    try:
        with contextlib.redirect_stdout(log):
            train(base, overrides=_trial_overrides(Path(folder), number, params), on_epoch_end=on_epoch_end)
    except CaekitError as exc:
        status, error = ("diverged" if isinstance(exc, TrainingDiverged) else "failed"), str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken trial must not take the others down; its error is kept
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


def run_search(search: SearchConfig, base: RunConfig, stem: str = "search",
               report: Callable[[Trial], None] | None = None) -> SearchResult:
    """Run every trial (in parallel processes where cores allow) and write the results table and plot."""
    mode = search.direction
    folder = _new_folder(search, base, stem)
    atomic_write_text(folder / "search.yaml", yaml.safe_dump(
        {**search.model_dump(mode="json", exclude={"base"}, exclude_none=True), "base": yaml.safe_load(dump_config(base))}, sort_keys=False))
    base_data = base.model_dump(mode="json")
    if search.method == "optuna":
        trials = _optuna_search(search, base, base_data, folder, mode, report)
    else:
        points = grid_points(search.space) if search.method == "grid" else random_points(search.space, search.trials, search.seed)
        trials = _run_points(points, search, base, base_data, folder, mode, report)
    return write_results(folder, trials, search, mode)


def _run_points(points: list[dict[str, Any]], search: SearchConfig, base: RunConfig, base_data: dict[str, Any],
                folder: Path, mode: str, report: Callable[[Trial], None] | None) -> list[Trial]:
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
        pending: set[Future] = {pool.submit(run_trial, base_data, str(folder), n, p, search.metric, mode, threads)
                                for n, p in enumerate(points)}
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


def _optuna_worker(search_data: dict[str, Any], base_data: dict[str, Any], folder: str, mode: str, n_trials: int,
                   worker: int, threads: int | None) -> None:
    """One process of an Optuna search: it asks the shared study (a journal file) for trials until its share is done."""
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = SearchConfig.model_validate(search_data)
    study = optuna.load_study(study_name="caekit", storage=_optuna_storage(Path(folder)),
                              sampler=optuna.samplers.TPESampler(seed=search.seed + worker),
                              pruner=optuna.pruners.MedianPruner(n_startup_trials=2) if search.prune else optuna.pruners.NopPruner())

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


def _optuna_search(search: SearchConfig, base: RunConfig, base_data: dict[str, Any], folder: Path, mode: str,
                   report: Callable[[Trial], None] | None) -> list[Trial]:
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="caekit", storage=_optuna_storage(folder), direction="minimize" if mode == "min" else "maximize")
    workers, threads = plan_workers(search, base, search.trials)
    shares = [search.trials // workers + (i < search.trials % workers) for i in range(workers)]
    data = search.model_dump(mode="json")
    if workers == 1:
        _optuna_worker(data, base_data, str(folder), mode, search.trials, 0, None)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for future in [pool.submit(_optuna_worker, data, base_data, str(folder), mode, n, i, threads) for i, n in enumerate(shares)]:
                future.result()
    study = optuna.load_study(study_name="caekit", storage=_optuna_storage(folder))
    trials = []
    for t in study.trials:
        run = t.user_attrs.get("run", str(folder / f"trial-{t.number:03d}"))
        value, epochs = trial_value(run, search.metric, mode) if Path(run).is_dir() else (None, 0)
        status = t.user_attrs.get("status", "pruned" if t.state.name == "PRUNED" else t.state.name.lower())
        trial = Trial(t.number, dict(t.params), status, value, run, epochs, t.user_attrs.get("seconds", 0.0), t.user_attrs.get("error", ""))
        trials.append(trial)
        if report:
            report(trial)
    return trials


# ------------------------------------------------------------------------------------------- results


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def sort_trials(trials: list[Trial], mode: str) -> list[Trial]:
    """Best first; trials that never produced the metric last, in trial order."""
    sign = 1 if mode == "min" else -1
    return sorted(trials, key=lambda t: (t.value is None, sign * t.value if t.value is not None else 0, t.number))


def results_table(trials: list[Trial], keys: list[str], metric: str) -> str:
    """A Markdown table: rank, trial, each searched field, the metric, status, epochs, seconds, run folder."""
    header = ["rank", "trial", *keys, metric, "status", "epochs", "seconds", "run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, t in enumerate(trials, 1):
        cells = [str(rank) if t.value is not None else "-", str(t.number), *(_format(t.params.get(k, "")) for k in keys),
                 _format(t.value) if t.value is not None else "n/a", t.status, str(t.epochs), f"{t.seconds:.0f}", Path(t.run).name]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(folder: Path, trials: list[Trial], search: SearchConfig, mode: str) -> SearchResult:
    trials = sort_trials(trials, mode)
    keys = list(search.space)
    table = folder / "results.md"
    atomic_write_text(table, f"# {folder.name}: {search.method} search, {len(trials)} trials, "
                             f"sorted by {search.metric} ({mode})\n\n" + results_table(trials, keys, search.metric))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "trial", *keys, search.metric, "status", "epochs", "seconds", "run", "error"])
    for rank, t in enumerate(trials, 1):
        writer.writerow([rank if t.value is not None else "", t.number, *(t.params.get(k, "") for k in keys),
                         "" if t.value is None else t.value, t.status, t.epochs, round(t.seconds, 2), t.run, t.error])
    csv_path = folder / "results.csv"
    atomic_write_text(csv_path, buffer.getvalue())
    plot = plot_search(trials, search.space, search.metric, mode, folder / "search.png")
    return SearchResult(folder, trials, search.metric, mode, table, csv_path, plot)


def plot_search(trials: list[Trial], space: dict[str, Param], metric: str, mode: str, path: Path) -> Path | None:
    """One panel per searched field: the metric of every finished trial against its value, the best one starred."""
    from caekit import viz  # noqa: F401  (selects the Agg backend)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    scored = [t for t in trials if t.value is not None]
    if not scored:
        return None
    best = sort_trials(scored, mode)[0]
    fig, axes = plt.subplots(1, len(space), figsize=(4 * len(space), 3.4), squeeze=False, sharey=True)
    for ax, (key, param) in zip(axes[0], space.items()):
        xs = [t.params.get(key) for t in scored]
        ys = [t.value for t in scored]
        if param.values is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in param.values):
            labels = [str(v) for v in param.values]
            positions = [labels.index(str(x)) for x in xs]
            ax.scatter(positions, ys, alpha=0.8)
            ax.set_xticks(range(len(labels)), labels, rotation=30)
            best_x = labels.index(str(best.params.get(key)))
        else:
            ax.scatter(xs, ys, alpha=0.8)
            best_x = best.params.get(key)
            if param.log:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels crowd a short log range
                if param.type == "int":
                    ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.scatter([best_x], [best.value], marker="*", s=220, color="tab:red", zorder=3, label=f"best (trial {best.number})")
        ax.set_xlabel(key.rsplit(".", 1)[-1] if len(key) > 28 else key)
        ax.set_title(key, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{metric} ({mode}) over {len(scored)} trials", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def search(path: str | Path, overrides: dict[str, Any] | None = None, base_overrides: dict[str, Any] | list[str] | None = None,
           report: Callable[[Trial], None] | None = None) -> SearchResult:
    """Run the search a YAML file describes.

    ``overrides`` replace top-level search settings (trials, parallel, method ...); ``base_overrides`` replace dotted
    fields of the base run config (``{"data.root": "/data"}``) for every trial.
    """
    path = Path(path)
    data = read_mapping(path, "search file", "base:, space:, method: ...")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    search_config, base = parse_search(data, path.parent, str(path), base_overrides)
    return run_search(search_config, base, path.stem, report)
