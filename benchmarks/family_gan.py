"""DCGAN on MNIST, judged by a separately trained CNN classifier: class coverage and confidence of its samples, and
the Fréchet distance and improved precision/recall (k = 3) of their features against the real test images, in the
judge's penultimate layer (no ImageNet Inception network offline: the same MNIST judge for every model); the real
reference is as many real training images. A conditional model (``--model cdcgan``) is also scored on how often the
judge agrees with the asked-for class. ``--score`` takes any runs that can sample (DCGAN, cDCGAN, VAE) and model zoo entries (``zoo:vae.mnist``).

    nice -n 10 .venv/bin/python benchmarks/family_gan.py --limit 15000 --epochs 4 [--model cdcgan] [--width 64 --latent-dim 100] [--ema-decay 0.999] [--sngan] [--extra-layers 1] [--projection] [--minibatch-std] [--g-conditioning embedding]
    nice -n 10 .venv/bin/python benchmarks/family_gan.py --score RUN [RUN ...]     # judge runs trained before
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from caekit.api import load, train
from caekit.data.datasets import load_dataset
from caekit.data.noise import seeded
from caekit.data.splits import labelled_sample
from caekit.evaluate.generative import classification_scores, frechet_distance, judge_features, precision_recall, sample_coverage
from caekit.viz.generative import coverage_bars
from caekit.workflows.judge import train_classifier

OUT = Path(__file__).parent / "results" / "family"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data")
    parser.add_argument("--limit", type=int, default=15000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--judge-per-class", type=int, default=5000)
    parser.add_argument("--judge-epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--runs-dir", default="runs/family")
    parser.add_argument("--model", default="dcgan", choices=["dcgan", "cdcgan"])
    parser.add_argument("--width", type=int, default=32, help="channels of the first D / last G layer (DCGAN paper: 64)")
    parser.add_argument("--latent-dim", type=int, default=64, help="size of z (DCGAN paper: 100)")
    parser.add_argument("--ema-decay", type=float, default=0.0, help="sample from a moving average of G (e.g. 0.999)")
    parser.add_argument(
        "--score",
        nargs="+",
        metavar="RUN",
        help="judge the samples of trained runs (or zoo:MODEL.TAG entries) instead of training one",
    )
    parser.add_argument("--extra-layers", type=int, default=0, help="3x3 conv blocks added at the base size of G and D")
    parser.add_argument("--sngan", action="store_true", help="spectrally normalised D (no batch norm) and the hinge loss")
    parser.add_argument(
        "--projection",
        action="store_true",
        help="cdcgan: a projection discriminator instead of one-hot label planes beside D's input",
    )
    parser.add_argument("--minibatch-std", action="store_true", help="a minibatch standard-deviation channel in D")
    parser.add_argument(
        "--g-conditioning",
        choices=["batchnorm", "embedding"],
        default="batchnorm",
        help="cdcgan: class-conditional batch norm in G (the default) or a label embedding beside z (before)",
    )
    args = parser.parse_args()
    real = load_dataset("mnist", "train", root=args.root)
    test = load_dataset("mnist", "test", root=args.root)
    judge = train_classifier(labelled_sample(real, per_class=args.judge_per_class, seed=1), epochs=args.judge_epochs)
    judge_scores = classification_scores(judge, test, rare=[])
    print(
        f"judge: {args.judge_per_class * 10} MNIST train images, {args.judge_epochs} epochs, test accuracy {judge_scores['accuracy']:.4f}"
    )
    if args.score:
        quality = [reference_quality(judge, real, test, args.samples)]
        for run in args.score:
            quality.append(score(_sampler(run), judge, test, args.samples, run))
        print_quality(quality, args.samples)
        return
    tag = "".join(
        [
            args.model,
            f"_w{args.width}" if args.width != 32 else "",
            "_ema" if args.ema_decay else "",
            "_sn" if args.sngan else "",
            f"_x{args.extra_layers}" if args.extra_layers else "",
            "_proj" if args.projection else "",
            "_mbstd" if args.minibatch_std else "",
            "_cbn" if args.model == "cdcgan" and args.g_conditioning == "batchnorm" else "",
        ]
    )
    conditioning = {"model.args.d_conditioning": "projection"} if args.projection else {}
    conditioning |= {"model.args.d_minibatch_std": True} if args.minibatch_std else {}
    conditioning |= {"model.args.g_conditioning": args.g_conditioning} if args.model == "cdcgan" else {}
    gan_loss = (
        {"model.args.d_norm": "spectral", "objective.args.loss": "hinge", "objective.args.label_smoothing": 0.0}
        if args.sngan
        else {}
    )
    result = train(
        "configs/family-dcgan.yaml",
        overrides={
            "runs_dir": args.runs_dir,
            "data.root": args.root,
            "data.limit": args.limit,
            "train.epochs": args.epochs,
            "train.progress": False,
            "model.name": args.model,
            "model.args.width": args.width,
            "model.args.latent_dim": args.latent_dim,
            "model.args.ema_decay": args.ema_decay,
            **gan_loss,
            **conditioning,
            "model.args.extra_layers": args.extra_layers,
            "name": f"{tag.replace('_', '-')}-mnist",
        },
    )
    model = result.model.cpu()
    for picture in ("samples.png", "samples_per_epoch.png", "gan_curves.png"):
        shutil.copy(result.run.path / picture, OUT / f"{tag}_{picture}")
    quality = score(model, judge, test, args.samples, f"{args.model.upper()} samples", OUT / f"{tag}_coverage.png")
    print_quality([reference_quality(judge, real, test, args.samples), quality], args.samples)


def _sampler(source: str) -> torch.nn.Module:
    """A trained run's model, or a model zoo entry named ``zoo:MODEL.TAG`` (e.g. ``zoo:vae.mnist``)."""
    if source.startswith("zoo:"):
        from caekit.models import create_model

        name, tag = source.removeprefix("zoo:").split(".", 1)
        return create_model(name, pretrained=tag)
    return load(source)[0]


def quality_row(name: str, judge: torch.nn.Module, images: torch.Tensor, test) -> dict[str, object]:
    """Fréchet distance and precision/recall of ``images`` against the real test images, in the judge's features."""
    fake = judge_features(judge, images)
    real = judge_features(judge, test.subset(list(range(min(len(images), len(test))))).unit_images())
    precision, recall = precision_recall(real, fake, k=3)
    return {"name": name, "fd": frechet_distance(real.numpy(), fake.numpy()), "precision": precision, "recall": recall}


def reference_quality(judge: torch.nn.Module, real, test, samples: int) -> dict[str, object]:
    """The same scores for real training images: the value a perfect generator would reach."""
    picked = torch.randperm(len(real), generator=torch.Generator().manual_seed(3))[:samples]
    return quality_row("real training images (reference)", judge, real.subset(picked.tolist()).unit_images(), test)


def print_quality(rows: list[dict[str, object]], samples: int) -> None:
    print(f"\n| {samples} images | Fréchet distance (judge features) | precision | recall |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['fd']:.2f} | {row['precision']:.3f} | {row['recall']:.3f} |")


def score(model: torch.nn.Module, judge: torch.nn.Module, test, samples: int, name: str, picture: Path | None = None) -> dict:
    """The judge's view of ``samples`` generated images (and of as many real test images), as a Markdown table;
    returns their Fréchet distance and precision/recall."""
    images = model.sample(samples, generator=seeded(7))
    asked = torch.arange(samples) % 10 if model.num_classes else None  # sample() cycles through the classes
    cov = sample_coverage(judge, images, 10, labels=asked)
    real = test.subset(list(range(samples)))
    real_cov = sample_coverage(judge, real.unit_images(), 10, labels=real.labels if asked is not None else None)
    if picture is not None:
        coverage_bars(cov.counts, cov.confidence, test.classes, picture, f"judge's view of {samples} {name}")
    print("| images | " + " | ".join(cov.row()) + " |\n|---|" + "---|" * len(cov.row()))
    print(f"| {name} | " + " | ".join(map(str, cov.row().values())) + " |")
    print("| real test images | " + " | ".join(map(str, real_cov.row().values())) + " |")
    print("per-class sample counts:", cov.counts.tolist())
    print("per-class mean confidence:", [round(float(c), 3) for c in cov.confidence])
    if asked is not None:  # a generator that ignores z draws one image per class: spread 0
        print(
            f"within-class spread (per-pixel std over the images of a class, mean over classes): samples "
            f"{within_class_spread(images, asked):.3f}, real test images {within_class_spread(real.unit_images(), real.labels):.3f}"
        )
    return quality_row(name, judge, images, test)


def within_class_spread(images: torch.Tensor, labels: torch.Tensor) -> float:
    return torch.stack([images[labels == c].std(0).mean() for c in labels.unique()]).mean().item()


if __name__ == "__main__":
    main()
