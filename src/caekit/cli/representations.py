"""Representation commands: embed (maps + projector bundle), cluster, classify, compare."""

from __future__ import annotations

from pathlib import Path

import click

COMMANDS: list[click.Command] = []


_model_option = click.option("--model", "run", required=True, type=click.Path(exists=True),
                             help="Trained run folder or .safetensors checkpoint.")
_data_options = [
    click.option("--dataset", help="Dataset to encode (default: the model's)."),
    click.option("--data-root", type=click.Path(), help="Folder holding it."),
    click.option("--split", "split_name", type=click.Choice(["train", "val", "test"]), default="test", show_default=True,
                 help="The run's own split, made again exactly as it was trained."),
]


def _with(options):
    def wrap(f):
        for option in reversed(options):
            f = option(f)
        return f

    return wrap


@click.command()
@_model_option
@_with(_data_options)
@click.option("--out", type=click.Path(file_okay=False), default="embedding", show_default=True)
@click.option("--max-points", type=int, default=5000, show_default=True, help="Seeded subset for the maps and the bundle.")
@click.option("--method", "methods", multiple=True, type=click.Choice(["tsne", "pca"]), help="Maps to draw (default both).")
@click.option("--thumbnails", type=int, default=0, show_default=True, help="Images drawn at their points.")
@click.option("--no-projector", is_flag=True, help="Skip the TensorBoard projector bundle.")
@click.option("--seed", type=int, default=0, show_default=True)
def embed(run, dataset, data_root, split_name, out, max_points, methods, thumbnails, no_projector, seed) -> None:
    """Encode a dataset and draw t-SNE/PCA maps; export the TensorBoard Embedding Projector bundle."""
    from caekit.evaluate.embed import check_projector
    from caekit.workflows.files import embed_split

    result = embed_split(run, out, split_name, dataset, data_root, tuple(methods) or ("tsne", "pca"), max_points, not no_projector,
                         thumbnails, seed)
    for key, path in result.paths.items():
        click.echo(f"{key:9s} {path}")
    if not no_projector:
        found = check_projector(Path(out) / "projector")
        click.echo(f"projector: {found['points']} points of {found['dims']} dims; open with: tensorboard --logdir {Path(out) / 'projector'}")


@click.command()
@_model_option
@_with(_data_options)
@click.option("--method", "methods", multiple=True, type=click.Choice(["kmeans", "agglomerative", "gmm"]),
              help="Clusterings (default kmeans and agglomerative).")
@click.option("--clusters", "k", type=int, help="Number of clusters (default: number of classes).")
@click.option("--max-points", type=int, default=5000, show_default=True)
@click.option("--pca-dims", type=int, default=50, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the table to this Markdown file.")
def cluster(run, dataset, data_root, split_name, methods, k, max_points, pca_dims, seed, out) -> None:
    """Cluster codes, raw pixels and PCA of pixels; print NMI, ARI and cluster accuracy against the labels."""
    from caekit.workflows.files import cluster_split

    table, count = cluster_split(run, split_name, dataset, data_root, tuple(methods) or ("kmeans", "agglomerative"), k, max_points,
                                 pca_dims, seed)
    click.echo(f"{split_name}: {count} images\n{table}")
    if out:
        Path(out).write_text(table + "\n")


@click.command()
@_model_option
@click.option("--dataset", help="Labelled dataset (default: the model's).")
@click.option("--data-root", type=click.Path())
@click.option("--mode", type=click.Choice(["linear", "mlp", "finetune"]), default="linear", show_default=True)
@click.option("--per-class", type=int, help="Labelled images per class (default: all).")
@click.option("--fraction", type=float, help="Fraction of the labels instead of --per-class.")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--encoder-lr", type=float, help="Encoder learning rate when fine-tuning.")
@click.option("--l2-sp", type=float, help="Fine-tuning: pull the encoder towards its pre-trained weights (L2-SP) instead of weight decay.")
@click.option("--class-weights", is_flag=True, help="Class-weighted loss (n / (k n_c)).")
@click.option("--balanced-sampling", is_flag=True, help="Draw each class equally often.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--runs-dir", default="runs", show_default=True)
def classify(run, dataset, data_root, mode, per_class, fraction, epochs, lr, encoder_lr, l2_sp, class_weights,
             balanced_sampling, seed, runs_dir) -> None:
    """Train encoder + FC on (a sample of) labels and report per-class scores and the confusion matrix."""
    from caekit.workflows.compare import classify_run

    args = {k: v for k, v in {"class_weights": "balanced" if class_weights else None, "balanced_sampling": balanced_sampling or None,
                              "encoder_lr": encoder_lr, "l2_sp": l2_sp}.items() if v is not None}
    result = classify_run(run, mode, per_class, fraction, dataset, data_root, epochs, lr, args, seed, runs_dir, progress=click.echo)
    report = next(iter(result.reports.values()))
    click.echo(report.to_markdown(top=30))
    click.echo(f"written to {result.folder}")


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a field, e.g. train.epochs=2 or seeds=[0].")
def compare(config: str, sets: tuple[str, ...]) -> None:
    """Run the Full + Sample comparison (pre-train, sample labels, train each model, score on test, over seeds)."""
    from caekit.config import parse_assignments
    from caekit.workflows.compare import run_compare, summary_markdown

    result = run_compare(config, parse_assignments(list(sets)) if sets else None, progress=click.echo)
    click.echo(summary_markdown(result.summary))
    for key in ("summary_md", "summary_csv", "results", "bars"):
        click.echo(f"{key:11s} {result.paths[key]}")


COMMANDS += [embed, cluster, classify, compare]
