"""Core commands: train, demo, reconstruct, encode, summary, models, datasets."""

from __future__ import annotations

import click

from caekit.cli.options import image_files_and_model, run_on_files


def _data_overrides(dataset: str | None, data_root: str | None, image_size: int | None, channels: int | None,
                    download: bool = False) -> dict[str, object]:
    pairs = {"data.name": dataset, "data.root": data_root, "data.image_size": image_size, "data.channels": channels}
    if download:
        pairs["data.download"] = True
    return {k: v for k, v in pairs.items() if v is not None}


COMMANDS: list[click.Command] = []


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--model", "model_name", help="Model or preset name (see `caekit models`).")
@click.option("--spec", type=click.Path(dir_okay=False), help="Architecture spec file (YAML/JSON) for model 'cae'.")
@click.option("--upsample", help="Decoder upsampling: max, average, fixed, nearest, bilinear, bicubic, transposed.")
@click.option("--dataset", help="Dataset name (see `caekit datasets`).")
@click.option("--data-root", type=click.Path(), help="Folder holding the dataset (never downloads unless --download).")
@click.option("--image-size", type=int, help="Resize images to this square size.")
@click.option("--channels", type=click.Choice(["1", "3"]), help="Convert images to grey (1) or colour (3).")
@click.option("--download", is_flag=True, help="Let torchvision download the dataset into --data-root.")
@click.option("--loss", type=click.Choice(["mse", "l1", "bce"]), help="Reconstruction loss.")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@click.option("--seed", type=int)
@click.option("--device", help="auto, cpu, cuda or cuda:N.")
@click.option("--name", help="Run folder name (default: model-dataset-date-time).")
@click.option("--runs-dir", help="Where run folders go (default: runs).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any config field, e.g. train.patience=3.")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue this run folder from its last checkpoint.")
@click.option("--no-progress", is_flag=True, help="No progress bar (a line per epoch is still printed).")
def train(config, model_name, spec, upsample, dataset, data_root, image_size, channels, download, loss, epochs, batch_size,
          lr, seed, device, name, runs_dir, sets, resume, no_progress) -> None:
    """Train a model (default: the reference CAE on the bundled digits) and write a run folder."""
    from caekit.api import train as run_training

    pairs: dict[str, object] = {
        "model.name": model_name, "model.args.spec": spec, "model.args.upsample": upsample, "objective.args.loss": loss,
        "train.epochs": epochs, "train.batch_size": batch_size, "optim.lr": lr, "train.seed": seed,
        "train.device": device, "name": name, "runs_dir": runs_dir,
        **_data_overrides(dataset, data_root, image_size, int(channels) if channels else None, download),
    }
    if no_progress:
        pairs["train.progress"] = False
    overrides: dict[str, object] = {k: v for k, v in pairs.items() if v is not None}
    if sets:
        from caekit.config import parse_assignments

        overrides.update(parse_assignments(list(sets)))
    result = run_training(config, overrides=overrides, resume=resume)
    if result.run is not None:
        click.echo(f"test: {_format_metrics(result.test)}")
        click.echo(f"run folder: {result.run.path}")


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


@click.command()
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--runs-dir", default="runs", show_default=True)
@click.option("--no-progress", is_flag=True)
def demo(epochs: int, runs_dir: str, no_progress: bool) -> None:
    """Train the 28x28 reference CAE on scikit-learn's bundled digits (real scans, no download)."""
    from caekit.api import train as run_training

    config = {"name": "demo", "runs_dir": runs_dir, "model": {"name": "cae28"},
              "data": {"name": "digits", "image_size": 28}, "train": {"epochs": epochs, "batch_size": 32, "progress": not no_progress}}
    result = run_training(config)
    assert result.run is not None
    click.echo(f"test: {_format_metrics(result.test)}")
    click.echo(f"run folder: {result.run.path}  (open reconstructions.png, curves.png, filters.png, feature_maps.png)")


@click.command()
@image_files_and_model("reconstructions")
def reconstruct(images: tuple[str, ...], run: str, out: str) -> None:
    """Reconstruct image files with a trained model; writes each reconstruction and a comparison picture."""
    run_on_files("reconstruct_files", images, run, out)


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
def evaluate(run: str, checkpoint: str, split: str) -> None:
    """Evaluate a run's checkpoint on its test split (e.g. after stopping it); rewrites results.json and pictures."""
    from caekit.api import evaluate_run

    click.echo(f"{split}: {_format_metrics(evaluate_run(run, checkpoint, split))}")


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "run", required=True, type=click.Path(exists=True), help="Run folder or .safetensors checkpoint.")
@click.option("--out", type=click.Path(dir_okay=False), default="feature_maps.png", show_default=True)
@click.option("--per-stage", type=int, default=8, show_default=True, help="Channels shown per encoder stage.")
def features(image: str, run: str, out: str, per_stage: int) -> None:
    """Draw the feature maps of each encoder stage of a trained model for one image file."""
    from caekit.api import feature_maps_file

    click.echo(f"feature maps written to {feature_maps_file(image, run, out, per_stage)}")


@click.command()
@click.option("--model", "run", required=True, type=click.Path(exists=True), help="Run folder or .safetensors checkpoint.")
@click.option("--dataset", help="Another dataset to encode (default: the run's own splits).")
@click.option("--data-root", type=click.Path())
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True,
              help="The run's own split, made again exactly as it was trained (seed, fractions, limit).")
@click.option("--out", type=click.Path(dir_okay=False), default="codes.npz", show_default=True)
def encode(run: str, dataset: str | None, data_root: str | None, split: str, out: str) -> None:
    """Encode a dataset split to codes; writes an .npz with `codes` and `labels` (or .npy with codes only)."""
    from caekit.api import encode_split

    done = encode_split(run, out, split, dataset, data_root)
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


@click.command("models")
def list_models_command() -> None:
    """List the registered models and presets."""
    from caekit import catalogue

    for name, summary in catalogue.models():
        click.echo(f"{name:14s} {summary}")


@click.command("datasets")
def list_datasets_command() -> None:
    """List the registered datasets."""
    from caekit import catalogue

    for name, summary in catalogue.datasets():
        click.echo(f"{name:14s} {summary}")


COMMANDS += [train, evaluate, demo, reconstruct, features, encode, summary, list_models_command, list_datasets_command]
