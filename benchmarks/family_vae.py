"""Convolutional VAE on MNIST: test ELBO and importance-sampled NLL (nats), plus prior samples, interpolation and,
with a 2-D latent, the manifold. Data binarised at 0.5 (threshold), Bernoulli likelihood.

    nice -n 10 .venv/bin/python benchmarks/family_vae.py --limit 15000 --epochs 5 --test 1000 --k 100
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from caekit.api import train
from caekit.data.datasets import load_dataset
from caekit.evaluate.generative import elbo_and_nll

OUT = Path(__file__).parent / "results" / "family"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/work/data")
    parser.add_argument("--limit", type=int, default=15000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--runs-dir", default="runs/family")
    parser.add_argument("--skip-2d", action="store_true")
    args = parser.parse_args()
    test = load_dataset("mnist", "test", root=args.root).subset(list(range(args.test)))
    rows = []
    for config, tag in (("configs/family-vae.yaml", "vae16"), ("configs/family-vae2d.yaml", "vae2d")):
        if tag == "vae2d" and args.skip_2d:
            continue
        result = train(
            config,
            overrides={
                "runs_dir": args.runs_dir,
                "data.root": args.root,
                "data.limit": args.limit,
                "train.epochs": args.epochs,
                "train.progress": False,
            },
        )
        scores = elbo_and_nll(result.model.cpu(), test, k=args.k, binarisation="threshold")
        rows.append((tag, result.model.latent_dim, scores))
        for picture in ("prior_samples.png", "interpolation.png", "manifold.png", "samples_per_epoch.png", "curves.png"):
            if (result.run.path / picture).is_file():
                shutil.copy(result.run.path / picture, OUT / f"{tag}_{picture}")
        print(tag, scores, flush=True)
    print("| model | latent | test images | test ELBO (nats) | IS NLL, k | NLL (nats) |\n|---|---|---|---|---|---|")
    for tag, dim, s in rows:
        print(f"| {tag} | {dim} | {s['images']} | {s['elbo']:.2f} | {s['k']} | {s['nll']:.2f} |")


if __name__ == "__main__":
    main()
