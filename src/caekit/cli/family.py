"""Autoencoder-family commands: denoise, sample, stack (greedy layer-wise), encoder838 (the 8-3-8 demo)."""

from __future__ import annotations

import click

from caekit.cli.options import image_files_and_run, out_option, run_on_files, seed_option, trained_run

COMMANDS: list[click.Command] = []


@click.command()
@image_files_and_run("the denoised images and comparison.png", "Run folder or .safetensors of a denoising model.")
@click.option(
    "--add-noise",
    type=click.Choice(["gaussian", "salt_pepper", "mask"]),
    help="Corrupt the images first (to try a model on clean files); writes the noisy inputs too.",
)
@click.option("--level", type=float, default=0.3, help="Noise level for --add-noise (sigma, amount or fraction).")
@seed_option("Seed of the added noise.")
def denoise(images: tuple[str, ...], run: str, out: str | None, add_noise: str | None, level: float, seed: int) -> None:
    """Clean image files with a trained denoising autoencoder; writes each result and a comparison picture."""
    run_on_files("denoise_files", images, run, out, add_noise=add_noise, level=level, seed=seed)


@click.command()
@trained_run("Run folder of a VAE, cVAE, DCGAN or cDCGAN.")
@click.option("--count", "-n", "--n", "count", type=int, default=64, help="How many samples.")
@click.option(
    "--label",
    "labels",
    type=int,
    multiple=True,
    help="Class index for a conditional model (repeat; default: all classes in turn).",
)
@out_option("the grid picture", file=True)
@seed_option("Seed of the latent codes.")
@click.option("--images", "image_dir", type=click.Path(file_okay=False), help="Also write each sample as a PNG in this folder.")
def sample(run: str, count: int, labels: tuple[int, ...], out: str | None, seed: int, image_dir: str | None) -> None:
    """Draw samples from a trained generative model as a grid picture."""
    from caekit.api import sample_files

    path = sample_files(run, count, list(labels) or None, out, seed, image_dir)
    click.echo(f"{count} samples written to {path}")


@click.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--stage-epochs", type=int, help="Epochs per greedy stage (default: the config's train.epochs).")
@click.option("--finetune-epochs", type=int, help="Epochs of end-to-end fine-tuning (0: none; default: train.epochs).")
@click.option("--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help="Override any config field, e.g. data.limit=5000.")
def stack(config: str, stage_epochs: int | None, finetune_epochs: int | None, sets: tuple[str, ...]) -> None:
    """Greedy layer-wise stacked autoencoder: one run per stage (model.args.stages), then end-to-end fine-tuning."""
    from caekit.api import train_stacked

    result = train_stacked(config, None, stage_epochs, finetune_epochs, list(sets) if sets else None)
    for i, (path, test) in enumerate(zip(result.stage_runs, result.stage_tests), start=1):
        click.echo(f"stage {i}: test loss {test['loss']:.4g}  run folder: {path}")
    if result.finetune_run:
        click.echo(
            f"fine-tuned stack: test {', '.join(f'{k} {v:.4g}' for k, v in result.test.items())}  run folder: {result.finetune_run}"
        )


@click.command("encoder838")
@click.option("--hidden", type=int, default=3, help="Hidden units.")
@click.option("--patterns", type=int, default=8, help="One-hot patterns (input and output units).")
@click.option("--epochs", "-e", type=int, default=10, help="Epochs (each shows every pattern 400 times).")
@seed_option()
def encoder838(hidden: int, patterns: int, epochs: int, seed: int) -> None:
    """The 8-3-8 encoder: 8 one-hot patterns through 3 hidden units; prints inputs, codes and outputs."""
    from caekit.api import encoder_838

    result = encoder_838(patterns, hidden, epochs=epochs, seed=seed)
    click.echo(result.table())
    correct = int((result.outputs.argmax(1) == result.inputs.argmax(1)).sum())
    click.echo(
        f"{correct}/{patterns} patterns reconstructed; {result.distinct_codes} distinct codes when rounded to bits "
        f"(codes need not be binary: a unit may settle at an intermediate level); final loss {result.history[-1]['train_loss']:.4g}"
    )


COMMANDS += [denoise, sample, stack, encoder838]
