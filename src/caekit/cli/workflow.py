"""Experiment workflow commands: search (hyper-parameters), report (HTML pages of runs), export (deployment, the Hub)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--method", type=click.Choice(["grid", "random", "optuna"]), help="Override the file's search method.")
@click.option("--trials", type=int, help="Number of trials (random and optuna).")
@click.option("--parallel", help="Trials at once: a number, or auto (one per CPU core; one on a GPU).")
@click.option("--metric", help="Metric to rank by: a metrics.csv column (best epoch) or test_<name>.")
@click.option("--mode", type=click.Choice(["min", "max"]), help="Whether lower or higher metric values are better.")
@click.option("--name", help="Search folder name.")
@click.option("--runs-dir", help="Where the search folder goes.")
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a field of the base run config, e.g. data.root=/data."
)
def search(
    config: str,
    method: str | None,
    trials: int | None,
    parallel: str | None,
    metric: str | None,
    mode: str | None,
    name: str | None,
    runs_dir: str | None,
    sets: tuple[str, ...],
) -> None:
    """Grid, random or Optuna search over config fields (see configs/search-mnist.yaml for the file format)."""
    from caekit.config import parse_assignments
    from caekit.errors import ConfigError
    from caekit.search import Trial
    from caekit.search import search as run_search

    if parallel is not None and parallel != "auto" and (not parallel.isdigit() or int(parallel) < 1):
        raise ConfigError(f"--parallel '{parallel}' must be a positive number or auto")
    overrides = {
        "method": method,
        "trials": trials,
        "parallel": int(parallel) if parallel and parallel.isdigit() else parallel,
        "metric": metric,
        "mode": mode,
        "name": name,
        "runs_dir": runs_dir,
    }

    def report(trial: Trial) -> None:
        value = f"{trial.value:.4g}" if trial.value is not None else "n/a"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        click.echo(f"trial {trial.number}: {params} -> {value} ({trial.status}, {trial.seconds:.0f} s)")

    result = run_search(config, overrides, parse_assignments(list(sets)) if sets else None, report)
    click.echo(result.table.read_text())
    if result.best is not None:
        click.echo(f"best: trial {result.best.number} ({result.best.run})")
    click.echo(f"search folder: {result.folder} (results.md, results.csv{', search.png' if result.plot else ''})")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="reports", show_default=True, help="Folder for the HTML pages.")
def report(runs: tuple[str, ...], out: str) -> None:
    """Self-contained HTML page per run (or per run inside a folder of runs) and an index comparing them."""
    from caekit.report import write_reports

    pages = write_reports(list(runs), out)
    click.echo(f"{len(pages) - 1} run page(s) and {pages[0]} written")


@click.command("export")
@click.argument("run", type=click.Path(exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "torchscript", "exported-program", "hub"]),
    default="onnx",
    help="ONNX (checked with onnxruntime), TorchScript, a torch.export program (.pt2), or the Hugging Face Hub format.",
)
@click.option("--part", type=click.Choice(["model", "encoder", "decoder"]), default="model", help="What to export.")
@click.option(
    "--out", "-o", type=click.Path(), help="The file to write (a new folder for --format hub; default: RUN/export/PART.*)."
)
def export(run: str, fmt: str, part: str, out: str | None) -> None:
    """Export a trained run (or checkpoint) with a dynamic batch size, checked against PyTorch before it is kept."""
    from caekit.workflows.export import export_run

    done = export_run(run, fmt, out, part)
    if done.max_difference is None:
        click.echo(f"{done.path}/ (model.safetensors, config.json, README.md): push with huggingface_hub's upload_folder")
    else:
        click.echo(
            f"{done.path}: {part} as {fmt}, input [batch, {', '.join(map(str, done.input_shape[1:]))}]; "
            f"on a batch of 3 it matches PyTorch to {done.max_difference:.2g}"
        )


COMMANDS += [search, report, export]
