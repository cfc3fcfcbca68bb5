"""Core commands: train, evaluate, demo, reconstruct, features, encode, summary, models, datasets."""

from __future__ import annotations

import importlib
import shutil
import textwrap

import click

from caekit.cli.options import data_options, image_files_and_run, out_option, run_on_files, trained_run

COMMANDS: list[click.Command] = []


def _data_overrides(
    dataset: str | None, data_root: str | None, image_size: int | None, channels: int | None, download: bool = False
) -> dict[str, object]:
    pairs = {"data.name": dataset, "data.root": data_root, "data.image_size": image_size, "data.channels": channels}
    if download:
        pairs["data.download"] = True
    return {k: v for k, v in pairs.items() if v is not None}


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--model", "-m", "model_name", help="Architecture: a model or preset name (see `caekit models`).  [default: cae32]")
@click.option("--spec", type=click.Path(dir_okay=False), help="Architecture spec file (YAML/JSON) for model 'cae'.")
@click.option("--upsample", help="Decoder upsampling: max, average, fixed, nearest, bilinear, bicubic, transposed.")
@click.option(
    "--pretrained", help="Start from the model zoo's weights trained on this, e.g. mnist (`caekit models --pretrained`)."
)
@click.option("--dataset", "-d", help="Dataset name (see `caekit datasets`).  [default: digits]")
@click.option("--data-root", type=click.Path(), help="Folder holding the dataset (never downloads unless --download).")
@click.option("--image-size", type=int, help="Resize images to this square size (default: the dataset's own).")
@click.option("--channels", type=click.Choice(["1", "3"]), help="Convert images to grey (1) or colour (3).")
@click.option("--download", is_flag=True, help="Let torchvision download the dataset into --data-root.")
@click.option("--loss", type=click.Choice(["mse", "l1", "bce"]), help="Reconstruction loss.  [default: mse]")
@click.option("--epochs", "-e", type=int, help="Epochs to train.  [default: 10]")
@click.option("--batch-size", "-b", type=int, help="Images per step.  [default: 64]")
@click.option("--lr", type=float, help="Learning rate (default: the objective's, else 1e-3).")
@click.option("--seed", type=int, help="Seed of the splits, the initialisation and the batch order.  [default: 0]")
@click.option("--device", help="auto, cpu, cuda or cuda:N.  [default: auto]")
@click.option("--name", help="Run folder name (default: model-dataset-date-time).")
@click.option("--runs-dir", help="Where run folders go.  [default: runs]")
@click.option("--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help="Override any config field, e.g. train.patience=3.")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue this run folder from its last checkpoint.")
@click.option("--no-progress", is_flag=True, help="No progress bar (a line per epoch is still printed).")
def train(
    config,
    model_name,
    spec,
    upsample,
    pretrained,
    dataset,
    data_root,
    image_size,
    channels,
    download,
    loss,
    epochs,
    batch_size,
    lr,
    seed,
    device,
    name,
    runs_dir,
    sets,
    resume,
    no_progress,
) -> None:
    """Train a model (default: the reference CAE on the bundled digits) and write a run folder."""
    from caekit.api import train as run_training
    from caekit.config import parse_assignments

    pairs: dict[str, object] = {
        "model.name": model_name,
        "model.args.spec": spec,
        "model.args.upsample": upsample,
        "model.pretrained": pretrained,
        "objective.args.loss": loss,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "optim.lr": lr,
        "train.seed": seed,
        "train.device": device,
        "name": name,
        "runs_dir": runs_dir,
        **_data_overrides(dataset, data_root, image_size, int(channels) if channels else None, download),
    }
    if no_progress:
        pairs["train.progress"] = False
    overrides: dict[str, object] = {k: v for k, v in pairs.items() if v is not None}
    overrides.update(parse_assignments(list(sets)))
    result = run_training(config, overrides=overrides, resume=resume)
    if result.run is not None:
        click.echo(f"test: {_format_metrics(result.test)}")
        click.echo(f"run folder: {result.run.path}")


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


@click.command()
@click.option("--epochs", "-e", type=int, default=30, help="Epochs to train.")
@click.option("--runs-dir", default="runs", help="Where the run folder `demo` goes.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def demo(epochs: int, runs_dir: str, no_progress: bool) -> None:
    """Train the 28x28 reference CAE on scikit-learn's bundled digits (real scans, no download)."""
    from caekit.api import train as run_training

    config = {
        "name": "demo",
        "runs_dir": runs_dir,
        "model": {"name": "cae28"},
        "data": {"name": "digits", "image_size": 28},
        "train": {"epochs": epochs, "batch_size": 32, "progress": not no_progress},
    }
    result = run_training(config)
    assert result.run is not None
    click.echo(f"test: {_format_metrics(result.test)}")
    click.echo(f"run folder: {result.run.path}  (open reconstructions.png, curves.png, filters.png, feature_maps.png)")


@click.command()
@image_files_and_run("the reconstructions and comparison.png")
@click.option("--keep-size", is_flag=True, help="Write each reconstruction at its input's size (default: the model's).")
def reconstruct(images: tuple[str, ...], run: str, out: str | None, keep_size: bool) -> None:
    """Reconstruct image files with a trained model; writes each reconstruction and a comparison picture."""
    run_on_files("reconstruct_files", images, run, out, keep_size=keep_size)


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", help="Which checkpoint to score.")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", help="The run's own split to score it on.")
def evaluate(run: str, checkpoint: str, split: str) -> None:
    """Evaluate a run's checkpoint on its test split (e.g. after stopping it); rewrites results.json and pictures."""
    from caekit.api import evaluate_run

    click.echo(f"{split}: {_format_metrics(evaluate_run(run, checkpoint, split))}")


@click.command()
@click.argument("image", type=click.Path())
@trained_run()
@out_option("the picture", file=True)
@click.option("--per-stage", type=int, default=8, help="Channels shown per encoder stage.")
def features(image: str, run: str, out: str | None, per_stage: int) -> None:
    """Draw the feature maps of each encoder stage of a trained model for one image file."""
    from caekit.api import feature_maps_file

    click.echo(f"feature maps written to {feature_maps_file(image, run, out, per_stage)}")


@click.command()
@trained_run()
@data_options("encode")
@out_option("the codes (.npz with codes, labels and classes; .npy with codes only)", file=True)
def encode(run: str, dataset: str | None, data_root: str | None, split_name: str, out: str | None) -> None:
    """Encode a dataset split to codes; writes an .npz with `codes` and `labels` (or .npy with codes only)."""
    from caekit.api import encode_split

    done = encode_split(run, out, split_name, dataset, data_root)
    click.echo(f"{done.images} codes of size {done.codes.shape[1]} written to {done.path}")


@click.command()
@click.argument("spec", default="cae32")
@click.option("--input-shape", help="C,H,W to override the spec's input shape, e.g. 1,28,28.")
@click.option("--upsample", help="Decoder upsampling kind for a mirrored decoder.")
def summary(spec: str, input_shape: str | None, upsample: str | None) -> None:
    """Print the layer table (filter, stride, pad, output shape, parameters, multiply-adds) of a preset or spec file."""
    from caekit.errors import SpecError
    from caekit.spec import load_spec, parse_spec, plan

    resolved = load_spec(spec)
    overrides: dict[str, object] = {}
    if input_shape:
        try:
            overrides["input_shape"] = [int(v) for v in input_shape.split(",")]
        except ValueError:
            raise SpecError(f"--input-shape '{input_shape}' is not C,H,W") from None
    if upsample:
        overrides["upsample"] = upsample
    if overrides:
        resolved = parse_spec({**resolved.model_dump(), **overrides}, spec)
    click.echo(plan(resolved).summary())


def _listing(entries: list[tuple[str, str]]) -> None:
    """Name and description per entry, the description wrapped to the terminal's width under itself."""
    width = max(40, shutil.get_terminal_size().columns)
    indent = max(len(name) for name, _ in entries) + 2
    for name, text in entries:
        lines = textwrap.wrap(text or "(no description)", width - indent) or [""]
        click.echo(f"{name:<{indent}}{lines[0]}")
        for line in lines[1:]:
            click.echo(" " * indent + line)


def _with_plugins(entries: list[tuple[str, str]], registry: str) -> list[tuple[str, str]]:
    """The built-in ``entries`` and, when plug-ins were loaded, what they registered in ``registry`` (module:name)."""
    from caekit.plugins import loaded

    if not loaded():
        return entries  # the catalogue alone: no torch import, a fraction of a second
    module, name = registry.split(":")
    live = getattr(importlib.import_module(module), name)
    known = {entry for entry, _ in entries}

    def summary(factory: object) -> str:
        lines = (getattr(factory, "__doc__", None) or "").strip().splitlines()
        return f"{lines[0] if lines else '(no description)'} (plug-in)"

    return sorted(entries + [(n, summary(live.get(n))) for n in live.names() if n not in known])


@click.command("models")
@click.option("--pretrained", is_flag=True, help="List the model zoo's pretrained weights with their test figures instead.")
def list_models_command(pretrained: bool) -> None:
    """List the registered models and presets (and those of loaded plug-ins)."""
    from caekit import catalogue

    if pretrained:
        _listing(catalogue.pretrained())
        return
    _listing(_with_plugins(catalogue.models(), "caekit.models.registry:MODELS"))


@click.command("datasets")
def list_datasets_command() -> None:
    """List the registered datasets (and those of loaded plug-ins)."""
    from caekit import catalogue

    _listing(_with_plugins(catalogue.datasets(), "caekit.data.datasets:DATASETS"))


COMMANDS += [train, evaluate, demo, reconstruct, features, encode, summary, list_models_command, list_datasets_command]
