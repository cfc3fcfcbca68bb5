"""Denoising CAE vs classical filters on MNIST at Gaussian sigma 0.1/0.2/0.3/0.5; prints a Markdown table.

By default one blind denoising CAE is trained with sigma drawn per image from [0.05, 0.55] and scored at each sigma;
``--per-sigma`` trains one CAE for each sigma instead.

    nice -n 10 .venv/bin/python benchmarks/family_denoise.py --limit 4000 --epochs 3 --test 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

from caekit.api import train
from caekit.data.datasets import load_dataset
from caekit.data.noise import Corruption
from caekit.evaluate.denoising import compare, comparison_picture, markdown_table

OUT = Path(__file__).parent / "results" / "family"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/work/data")
    parser.add_argument("--sigmas", default="0.1,0.2,0.3,0.5")
    parser.add_argument("--limit", type=int, default=4000, help="MNIST training images per model")
    parser.add_argument("--per-sigma", action="store_true", help="one CAE per sigma instead of one blind CAE")
    parser.add_argument("--tune", type=int, default=16, help="images used to pick each classical filter's parameter")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--test", type=int, default=200, help="MNIST test images compared")
    parser.add_argument("--runs-dir", default="runs/family")
    args = parser.parse_args()
    clean = load_dataset("mnist", "test", root=args.root).unit_images(0, args.test)
    rows = []
    model = None
    for sigma in (float(s) for s in args.sigmas.split(",")):
        if model is None or args.per_sigma:
            overrides = {
                "name": f"denoise-sigma{sigma:g}" if args.per_sigma else "denoise-blind",
                "runs_dir": args.runs_dir,
                "data.root": args.root,
                "data.limit": args.limit,
                "train.epochs": args.epochs,
                "train.progress": False,
            }
            if args.per_sigma:
                overrides["objective.args.level"] = sigma
            model = train("configs/family-denoise.yaml", overrides=overrides).model.cpu()
        table, outputs = compare(clean, Corruption("gaussian", sigma), model, tune_images=args.tune)
        rows += table
        comparison_picture(clean, outputs, OUT / f"denoise_sigma{sigma:g}.png", title=f"MNIST test, Gaussian sigma {sigma:g}")
        print(markdown_table(table), flush=True)
    print("\n" + markdown_table(rows))


if __name__ == "__main__":
    main()
