"""Greedy layer-wise stacked autoencoders on MNIST, their codes used by a logistic-regression classifier.

nice -n 10 .venv/bin/python benchmarks/family_stacked.py --limit 20000 --stage-epochs 4 --finetune-epochs 4
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from caekit.data.datasets import load_dataset
from caekit.data.splits import labelled_sample
from caekit.evaluate.classification import linear_probe
from caekit.inference import encode, load
from caekit.workflows.stacked import train_stacked

OUT = Path(__file__).parent / "results" / "family"
STACKS = {
    "fc 784-256-64": [
        {"type": "fc", "units": 256, "activation": "sigmoid"},
        {"type": "fc", "units": 64, "activation": "sigmoid"},
    ],
    "conv 16@/2-32@/2": [
        {"type": "conv", "filters": 16, "stride": 2, "batch_norm": True},
        {"type": "conv", "filters": 32, "stride": 2, "batch_norm": True},
    ],
}


@torch.no_grad()
def stage_codes(model, data, upto: int):
    """Flat codes of the first ``upto`` stages only."""
    return torch.cat([model.encoder(chunk.float() / 255, upto=upto).code.flatten(1) for chunk in data.images.split(500)]).numpy()


def probe(codes_train, y_train, codes_test, y_test) -> float:
    return linear_probe(codes_train, y_train, codes_test, y_test, [str(i) for i in range(10)], max_iter=300).accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/work/data")
    parser.add_argument("--limit", type=int, default=20000)
    parser.add_argument("--stage-epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--probe-per-class", type=int, default=500, help="labelled training images per class for the probe")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--runs-dir", default="runs/family")
    parser.add_argument("--stacks", default=",".join(STACKS))
    args = parser.parse_args()
    train_set = labelled_sample(load_dataset("mnist", "train", root=args.root), per_class=args.probe_per_class, seed=3)
    test = load_dataset("mnist", "test", root=args.root).subset(list(range(args.test)))
    y_train, y_test = train_set.labels.numpy(), test.labels.numpy()
    rows = [
        (
            "raw pixels",
            784,
            probe(
                train_set.images.flatten(1).float().numpy() / 255, y_train, test.images.flatten(1).float().numpy() / 255, y_test
            ),
            "-",
        )
    ]
    for label in args.stacks.split(","):
        stages = STACKS[label]
        tag = "stacked-" + ("fc" if label.startswith("fc") else "conv")
        result = train_stacked(
            "configs/family-stacked.yaml",
            stages,
            stage_epochs=args.stage_epochs,
            finetune_epochs=args.finetune_epochs,
            overrides={
                "name": tag,
                "runs_dir": args.runs_dir,
                "data.root": args.root,
                "data.limit": args.limit,
                "train.progress": False,
            },
        )
        for i, run in enumerate(result.stage_runs):
            model, _ = load(run)
            # the stage-i model encodes through all stages; stages above i are still untrained, so probe stage i's own code
            codes = stage_codes(model, train_set, i + 1), stage_codes(model, test, i + 1)
            rows.append(
                (
                    f"{label}: greedy, stage {i + 1} code",
                    codes[0].shape[1],
                    probe(codes[0], y_train, codes[1], y_test),
                    f"{result.stage_tests[i]['loss']:.4f}",
                )
            )
        model, _ = load(result.finetune_run)
        codes = encode(model, train_set), encode(model, test)
        rows.append(
            (
                f"{label}: greedy + fine-tuned stack",
                codes[0].shape[1],
                probe(codes[0], y_train, codes[1], y_test),
                f"{result.test['loss']:.4f} (pixel MSE)",
            )
        )
        for i, run in enumerate(result.stage_runs):
            shutil.copy(run / "reconstructions.png", OUT / f"{tag}_stage{i + 1}_reconstructions.png")
        shutil.copy(result.finetune_run / "reconstructions.png", OUT / f"{tag}_finetuned_reconstructions.png")
        print(rows[-3:], flush=True)
    print(f"\nlogistic regression on codes: {len(train_set)} labelled MNIST train images, {len(test)} test images")
    print("| features | size | test accuracy | stage test loss |\n|---|---|---|---|")
    for name, size, acc, loss in rows:
        print(f"| {name} | {size} | {acc:.4f} | {loss} |")


if __name__ == "__main__":
    main()
