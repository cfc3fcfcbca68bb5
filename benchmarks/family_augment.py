"""Generative augmentation on an imbalanced MNIST subset: does a class-conditional VAE's (and, with ``--gan-epochs``, a
conditional DCGAN's) synthetic data raise macro F1 on the rare classes? Compared with plain training and with
oversampling (duplicating) the rare images.

    nice -n 10 .venv/bin/python benchmarks/family_augment.py --rare 3,5,8 --rare-count 20 --common-count 400 --seeds 3 [--gan-epochs 200 [--gan-balanced]]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from caekit.config import OptimConfig, TrainConfig
from caekit.data.datasets import load_dataset
from caekit.evaluate.generative import (
    classification_scores,
    conditional_samples,
    imbalanced,
    oversampled,
    sample_coverage,
    with_synthetic,
)
from caekit.models import create_model
from caekit.runner import fit
from caekit.training.objectives import build_objective
from caekit.viz.generative import sample_grid
from caekit.workflows.judge import train_classifier

OUT = Path(__file__).parent / "results" / "family"


def train_generator(data, model_name: str, model_args: dict, objective, epochs: int, seed: int):
    """A class-conditional generative model trained on ``data`` alone (no validation split)."""
    torch.manual_seed(seed)
    model = create_model(model_name, input_shape=data.shape, num_classes=len(data.classes), **model_args)
    # lr left to the objective: the ELBO's 1e-3, the GAN's 2e-4 (beta1 0.5)
    return fit(
        model,
        objective,
        data,
        None,
        TrainConfig(epochs=epochs, batch_size=64, seed=seed, progress=False, cpu_tuning=True),
        OptimConfig(weight_decay=0.0),
    ).model.cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/work/data")
    parser.add_argument("--rare", default="3,5,8")
    parser.add_argument("--rare-count", type=int, default=20)
    parser.add_argument("--common-count", type=int, default=400)
    parser.add_argument("--cvae-epochs", type=int, default=30)
    parser.add_argument("--gan-epochs", type=int, default=0, help="also train a conditional DCGAN this long and add its samples")
    parser.add_argument("--gan-balanced", action="store_true", help="the conditional DCGAN draws its real batches class-balanced")
    parser.add_argument("--clf-epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument(
        "--judge-images", type=int, default=10000, help="balanced MNIST images for the judge of the synthetic images"
    )
    args = parser.parse_args()
    rare = [int(c) for c in args.rare.split(",")]
    full = load_dataset("mnist", "train", root=args.root)
    test = load_dataset("mnist", "test", root=args.root).subset(list(range(args.test)))
    data = imbalanced(full, rare, args.rare_count, args.common_count, seed=0)
    print(f"imbalanced train set: {data.class_counts()}")
    cvae = train_generator(
        data, "cvae", {"latent_dim": 16}, build_objective("elbo", binarise="none", warmup_steps=200), args.cvae_epochs, seed=0
    )
    want = args.common_count - args.rare_count
    synthetic, labels = conditional_samples(cvae, data, rare, want, "prior", seed=11)
    posterior, posterior_labels = conditional_samples(cvae, data, rare, want, "posterior", seed=12)
    sample_grid(
        torch.cat([synthetic[labels == c][:10] for c in rare] + [posterior[posterior_labels == c][:10] for c in rare]),
        OUT / "augment_cvae_rare_samples.png",
        f"cVAE samples of the rare classes {rare}: from the prior (top 3 rows), near real images (bottom 3)",
        columns=10,
    )
    conditions = {
        "imbalanced": data,
        "oversampled rare": oversampled(data, args.common_count, rare),
        "+ cVAE synthetic (prior)": with_synthetic(data, synthetic, labels),
        "+ cVAE synthetic (posterior of real rare images)": with_synthetic(data, posterior, posterior_labels),
    }
    synthetic_sets = {"cVAE prior": (synthetic, labels), "cVAE posterior": (posterior, posterior_labels)}
    if args.gan_epochs:
        # the family-dcgan.yaml recipe (latent 64, width 32, label smoothing 0.1; the gan objective's Adam 2e-4 / 0.5)
        objective = build_objective("gan", label_smoothing=0.1, balanced_sampling=args.gan_balanced)
        gan = train_generator(data, "cdcgan", {"latent_dim": 64, "width": 32}, objective, args.gan_epochs, seed=0)
        gan_images, gan_labels = conditional_samples(gan, data, rare, want, "prior", seed=13)
        name, tag = ("cDCGAN, balanced sampling", "_balanced") if args.gan_balanced else ("cDCGAN", "")
        sample_grid(
            torch.cat([gan_images[gan_labels == c][:10] for c in rare]),
            OUT / f"augment_cdcgan{tag}_rare_samples.png",
            f"{name} samples of the rare classes {rare} (one row each)",
            columns=10,
        )
        conditions[f"+ {name} synthetic"] = with_synthetic(data, gan_images, gan_labels)
        synthetic_sets[name] = (gan_images, gan_labels)
    judge = train_classifier(full.subset(list(range(args.judge_images))), epochs=args.clf_epochs, seed=0)
    for name, (images, wanted) in synthetic_sets.items():
        cov = sample_coverage(judge, images, 10, wanted)
        print(
            f"\nsynthetic rare images ({name}) that a judge trained on {args.judge_images} balanced MNIST images assigns to their label: "
            f"{cov.label_agreement:.3f} (mean confidence {cov.mean_confidence:.3f})"
        )
    results: dict[str, list[dict[str, float]]] = {name: [] for name in conditions}
    for seed in range(args.seeds):
        for name, train_set in conditions.items():
            clf = train_classifier(train_set, epochs=args.clf_epochs, seed=seed)
            results[name].append(classification_scores(clf, test, rare))
            print(seed, name, results[name][-1], flush=True)
    print(
        f"\nrare classes {rare}: {args.rare_count} images each; other classes {args.common_count} each; "
        f"{len(test)} MNIST test images; JudgeCNN {args.clf_epochs} epochs; mean ± std over {args.seeds} seeds"
    )
    keys = ["accuracy", "macro F1", "rare macro F1", "common macro F1"]
    print("| training set | images | " + " | ".join(keys) + " |\n|---|---|" + "---|" * len(keys))
    for name, runs in results.items():
        cells = [f"{np.mean([r[k] for r in runs]):.4f} ± {np.std([r[k] for r in runs]):.4f}" for k in keys]
        print(f"| {name} | {len(conditions[name])} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
