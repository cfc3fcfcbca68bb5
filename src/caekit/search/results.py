"""Search results: the trial records, the sorted Markdown and CSV tables, and the metric-per-parameter plot."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caekit.fileio import atomic_write_text
from caekit.search.space import Param, SearchConfig


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
        cells = [
            str(rank) if t.value is not None else "-",
            str(t.number),
            *(_format(t.params.get(k, "")) for k in keys),
            _format(t.value) if t.value is not None else "n/a",
            t.status,
            str(t.epochs),
            f"{t.seconds:.0f}",
            Path(t.run).name,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(folder: Path, trials: list[Trial], search: SearchConfig, mode: str) -> SearchResult:
    trials = sort_trials(trials, mode)
    keys = list(search.space)
    table = folder / "results.md"
    atomic_write_text(
        table,
        f"# {folder.name}: {search.method} search, {len(trials)} trials, "
        f"sorted by {search.metric} ({mode})\n\n" + results_table(trials, keys, search.metric),
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "trial", *keys, search.metric, "status", "epochs", "seconds", "run", "error"])
    for rank, t in enumerate(trials, 1):
        writer.writerow(
            [
                rank if t.value is not None else "",
                t.number,
                *(t.params.get(k, "") for k in keys),
                "" if t.value is None else t.value,
                t.status,
                t.epochs,
                round(t.seconds, 2),
                t.run,
                t.error,
            ]
        )
    csv_path = folder / "results.csv"
    atomic_write_text(csv_path, buffer.getvalue())
    plot = plot_search(trials, search.space, search.metric, mode, folder / "search.png")
    return SearchResult(folder, trials, search.metric, mode, table, csv_path, plot)


def plot_search(trials: list[Trial], space: dict[str, Param], metric: str, mode: str, path: Path) -> Path | None:
    """One panel per searched field: the metric of every finished trial against its value, the best one starred."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from caekit import viz

    scored = [t for t in trials if t.value is not None]
    if not scored:
        return None
    best = sort_trials(scored, mode)[0]
    fig, axes = viz.subplots(1, len(space), figsize=(4 * len(space), 3.4), squeeze=False, sharey=True)
    for ax, (key, param) in zip(axes[0], space.items()):
        xs = [t.params.get(key) for t in scored]
        ys = [t.value for t in scored]
        if param.values is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in param.values):
            labels = [str(v) for v in param.values]
            positions = [labels.index(str(x)) for x in xs]
            ax.scatter(positions, ys, alpha=0.8)
            ax.set_xticks(range(len(labels)), labels, rotation=30)
            best_x: Any = labels.index(str(best.params.get(key)))  # a position here, the value itself below
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
    return path
