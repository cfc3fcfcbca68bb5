"""Convolutional VAE on MNIST on the literature's protocol: test NLL (nats) by importance sampling against epochs.

Dynamically binarised MNIST (a fresh Bernoulli draw of every training image each time it is seen; validation and
test binarised once with a fixed seed), Bernoulli likelihood, NLL = -log (1/k sum_i p(x, z_i) / q(z_i | x)) with
k importance samples (Burda et al. 2016). ``--samples K`` trains on the IWAE bound with K samples instead of the
ELBO. The run is trained in stages (``--curve``), each resumed from the last, and the best checkpoint so far is
scored after each, so the table shows what every extra epoch buys. ``--resume RUN`` goes on from a run folder made earlier: with a
``--curve`` it has already reached, it only scores (e.g. k = 5,000 with more threads than training used).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/family_vae.py --root data --curve 1,3,10 --ks 100,5000 --test 10000
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from caekit.api import train
from caekit.data.datasets import load_dataset
from caekit.evaluate.generative import elbo_and_nll

OUT = Path(__file__).parent / "results" / "family"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data")
    parser.add_argument("--config", default="configs/family-vae.yaml")
    parser.add_argument("--limit", type=int, default=None, help="training images (default: all 60,000)")
    parser.add_argument("--curve", default="1,3,10", help="epochs after which to score, the last is the run's length")
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--ks", default="100", help="importance samples, comma-separated; the last is scored only at the end")
    parser.add_argument("--binarise", choices=["dynamic", "threshold"], default="dynamic")
    parser.add_argument("--samples", type=int, default=1, help="train on the IWAE bound with this many samples (1: ELBO)")
    parser.add_argument("--runs-dir", default="runs/family")
    parser.add_argument("--resume", help="a run folder of this script's: train it on to --curve, or score it again")
    args = parser.parse_args()
    curve = [int(e) for e in args.curve.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    test = load_dataset("mnist", "test", root=args.root).subset(list(range(args.test)))
    test_binarisation = "dynamic" if args.binarise == "dynamic" else "threshold"  # dynamic: one fixed-seed draw
    overrides = {
        "runs_dir": args.runs_dir,
        "data.root": args.root,
        "data.limit": args.limit,
        "objective.args.binarise": args.binarise,
        "objective.args.samples": args.samples,
        "train.progress": False,
    }
    if args.samples > 1:
        overrides["objective.args.warmup_steps"] = 0  # the IWAE bound has no KL weight to warm up
    rows, seconds = [], 0.0
    run: Path | None = Path(args.resume) if args.resume else None
    for epochs in curve:
        start = time.perf_counter()
        result = train(args.config, overrides={**overrides, "train.epochs": epochs}, resume=run)
        seconds += time.perf_counter() - start
        run = result.run.path
        model = result.model.cpu()
        for k in ks if epochs == curve[-1] else ks[:1]:
            start = time.perf_counter()
            scores = elbo_and_nll(model, test, k=k, binarisation=test_binarisation)
            rows.append((epochs, seconds, k, scores, time.perf_counter() - start))
            print(epochs, k, scores, flush=True)
    assert run is not None
    stem = Path(args.config).stem.removeprefix("family-")  # vae, vae-res, vae2d: each config keeps its own pictures
    tag = f"{stem}-{args.binarise}" + (f"-iwae{args.samples}" if args.samples > 1 else "")
    OUT.mkdir(parents=True, exist_ok=True)
    for picture in ("prior_samples.png", "interpolation.png", "samples_per_epoch.png", "curves.png"):
        if (run / picture).is_file():
            shutil.copy(run / picture, OUT / f"{tag}_{picture}")
    bound = f"IWAE, k = {args.samples}" if args.samples > 1 else "ELBO"
    print(f"\n{args.config}, trained on the {bound}; MNIST binarised {args.binarise}, test images {len(test)}")
    print("| epochs | training s | test ELBO (nats) | k | test NLL (nats) | scoring s |\n|---|---|---|---|---|---|")
    for epochs, train_s, k, s, score_s in rows:
        print(f"| {epochs} | {train_s:.0f} | {s['elbo']:.2f} | {k} | {s['nll']:.2f} | {score_s:.0f} |")


if __name__ == "__main__":
    main()
