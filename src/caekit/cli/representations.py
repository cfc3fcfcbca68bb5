"""Representation commands: embed (maps + projector bundle), cluster, classify, compare."""

from __future__ import annotations

import click

from caekit.cli.options import data_options, out_option, seed_option, trained_run

COMMANDS: list[click.Command] = []


@click.command()
@trained_run()
@data_options("encode")
@out_option("the maps, codes.npz and the projector bundle")
@click.option("--max-points", type=int, default=5000, help="Seeded subset for the maps and the bundle.")
@click.option(
    "--method", "methods", multiple=True, type=click.Choice(["tsne", "pca"]), help="Maps to draw (repeat; default both)."
)
@click.option("--thumbnails", type=int, default=0, help="Images drawn at their points.")
@click.option("--no-projector", is_flag=True, help="Skip the TensorBoard projector bundle.")
@seed_option("Seed of the subset and of t-SNE.")
def embed(run, dataset, data_root, split_name, out, max_points, methods, thumbnails, no_projector, seed) -> None:
    """Encode a dataset and draw t-SNE/PCA maps; export the TensorBoard Embedding Projector bundle."""
    from caekit.api import embed_split

    result = embed_split(
        run,
        out,
        split_name,
        dataset,
        data_root,
        tuple(methods) or ("tsne", "pca"),
        max_points,
        not no_projector,
        thumbnails,
        seed,
    )
    for key, path in result.paths.items():
        click.echo(f"{key:9s} {path}")
    if "config" in result.paths:
        folder = result.paths["config"].parent
        click.echo(
            f"projector: {len(result.codes)} points of {result.codes.shape[1]} dims; open with: tensorboard --logdir {folder}"
        )


@click.command()
@trained_run()
@data_options("cluster")
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(["kmeans", "agglomerative", "gmm"]),
    help="Clusterings (repeat; default kmeans and agglomerative).",
)
@click.option("--clusters", "k", type=int, help="Number of clusters (default: number of classes).")
@click.option("--max-points", type=int, default=5000, help="Seeded subset to cluster.")
@click.option("--pca-dims", type=int, default=50, help="PCA dimensions of the pixel baseline.")
@seed_option("Seed of the subset and of the clusterings.")
@out_option("the table (Markdown)", file=True)
def cluster(run, dataset, data_root, split_name, methods, k, max_points, pca_dims, seed, out) -> None:
    """Cluster codes, raw pixels and PCA of pixels; print NMI, ARI and cluster accuracy against the labels."""
    from caekit.api import cluster_split

    table, count, path = cluster_split(
        run, split_name, dataset, data_root, tuple(methods) or ("kmeans", "agglomerative"), k, max_points, pca_dims, seed, out
    )
    click.echo(f"{split_name}: {count} images\n{table}\nwritten to {path}")


@click.command()
@trained_run()
@click.option("--dataset", "-d", help="Labelled dataset (default: the run's).")
@click.option("--data-root", type=click.Path(), help="Folder holding --dataset.")
@click.option(
    "--mode",
    type=click.Choice(["linear", "mlp", "finetune"]),
    default="linear",
    help="linear probe or MLP head on the frozen encoder, or fine-tune it.",
)
@click.option("--per-class", type=int, help="Labelled images per class (default: all).")
@click.option("--fraction", type=float, help="Fraction of the labels instead of --per-class.")
@click.option("--epochs", "-e", type=int, default=10, help="Epochs to train the classifier.")
@click.option("--lr", type=float, default=1e-3, help="Learning rate (the head's when --encoder-lr is given).")
@click.option("--encoder-lr", type=float, help="Encoder learning rate when fine-tuning.")
@click.option(
    "--l2-sp", type=float, help="Fine-tuning: pull the encoder towards its pre-trained weights (L2-SP) instead of weight decay."
)
@click.option("--class-weights", is_flag=True, help="Class-weighted loss (n / (k n_c)).")
@click.option("--balanced-sampling", is_flag=True, help="Draw each class equally often.")
@seed_option("Seed of the labelled sample and of training.")
@click.option("--runs-dir", help="Where the classification folder goes (default: inside the run folder).")
def classify(
    run,
    dataset,
    data_root,
    mode,
    per_class,
    fraction,
    epochs,
    lr,
    encoder_lr,
    l2_sp,
    class_weights,
    balanced_sampling,
    seed,
    runs_dir,
) -> None:
    """Train encoder + FC on (a sample of) labels and report per-class scores and the confusion matrix."""
    from caekit.api import classify_run

    args = {
        k: v
        for k, v in {
            "class_weights": "balanced" if class_weights else None,
            "balanced_sampling": balanced_sampling or None,
            "encoder_lr": encoder_lr,
            "l2_sp": l2_sp,
        }.items()
        if v is not None
    }
    result = classify_run(
        run, mode, per_class, fraction, dataset, data_root, epochs, lr, args, seed, runs_dir, progress=click.echo
    )
    report = next(iter(result.reports.values()))
    click.echo(report.to_markdown(top=30))
    click.echo(f"written to {result.folder}")


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--set", "-s", "sets", multiple=True, metavar="KEY=VALUE", help="Override a field, e.g. train.epochs=2 or seeds=[0]."
)
def compare(config: str, sets: tuple[str, ...]) -> None:
    """Run the Full + Sample comparison (pre-train, sample labels, train each model, score on test, over seeds)."""
    from caekit.api import CompareConfig, run_compare, summary_markdown
    from caekit.config import parse_assignments

    result = run_compare(config, parse_assignments(list(sets), CompareConfig) if sets else None, progress=click.echo)
    click.echo(summary_markdown(result.summary))
    for key in ("summary_md", "summary_csv", "results", "bars"):
        click.echo(f"{key:11s} {result.paths[key]}")


COMMANDS += [embed, cluster, classify, compare]
