"""Stacked denoising autoencoders on the classic protocol (Vincent et al. 2010): greedy layer-wise pre-training
without labels, then supervised fine-tuning of the whole stack under a logistic-regression layer on all MNIST
labels; test error on all 10,000 test images against the same network from scratch and against greedy pre-training
without noise (SDAE-3 in the paper: 1.28 %, SAA-3: 1.40 %).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/family_sdae.py --root data --stage-epochs 10 --epochs 40 [--stacks fc,conv]
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from caekit.api import train
from caekit.workflows.stacked import train_stacked

CONFIG = "configs/family-sdae.yaml"
STACKS = {
    "fc": [{"type": "fc", "units": 1000, "activation": "sigmoid"} for _ in range(3)],  # SDAE-3's 784-1000-1000-1000
    "conv": [  # the convolutional variant: relu codes, so masking noise (the only kind that needs no [0, 1] range)
        {"type": "conv", "filters": 32, "stride": 2, "batch_norm": True},
        {"type": "conv", "filters": 64, "stride": 2, "batch_norm": True},
    ],
}
PAPER = {"scratch": "-", "sae": "1.40 (SAA-3)", "sdae": "1.28 (SDAE-3)"}


def pretrain(stack: str, noise: bool, args: argparse.Namespace) -> str:
    """Greedy layer-wise pre-training without labels; the last stage's run folder."""
    loss = "bce" if stack == "fc" else "mse"  # cross-entropy needs the [0, 1] of images and sigmoid codes
    objective: dict[str, Any] = {"name": "denoise", "args": {"loss": loss, "noise": "mask", "level": args.level}}
    if not noise:
        objective = {"name": "reconstruct", "args": {"loss": loss}}
    result = train_stacked(
        CONFIG,
        STACKS[stack],
        stage_epochs=args.stage_epochs,
        finetune_epochs=0,
        overrides={
            "name": f"{'sdae' if noise else 'sae'}-{stack}",
            "runs_dir": args.runs_dir,
            "data.root": args.root,
            "train.seed": args.seed,
            "objective": objective,
            "train.progress": False,
        },
    )
    return str(result.stage_runs[-1].resolve())


def finetune(stack: str, variant: str, pretrained: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """The whole stack plus a linear layer, trained on every training label; best epoch by validation accuracy."""
    autoencoder = {"name": "stacked", "args": {"stages": STACKS[stack]}}
    source = {"pretrained": pretrained} if pretrained else {"autoencoder": autoencoder}
    result = train(
        {
            "name": f"{variant}-{stack}-classifier",
            "runs_dir": args.runs_dir,
            "data": {"name": "mnist", "root": args.root, "augment": "none"},
            "model": {"name": "encoder_classifier", "args": {**source, "mode": "finetune", "head": "linear"}},
            "objective": {"name": "classify"},
            "optim": {"lr": args.lr, "weight_decay": 0.0},
            "train": {
                "epochs": args.epochs,
                "batch_size": 64,
                "patience": args.patience or None,
                "scheduler": args.scheduler,
                "seed": args.seed,
                "progress": False,
            },
        }
    )
    history = result.history
    best = max(range(len(history)), key=lambda i: (history[i]["val_accuracy"], -history[i]["val_loss"]))
    return {"error": 100 * (1 - result.test["accuracy"]), "best_epoch": best + 1, "epochs": len(history)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data")
    parser.add_argument("--stage-epochs", type=int, default=10, help="greedy epochs per stage")
    parser.add_argument("--epochs", type=int, default=40, help="supervised fine-tuning epochs (at most, with patience)")
    parser.add_argument("--patience", type=int, default=0, help="early stopping after this many epochs; 0: none")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--scheduler", default="cosine", choices=["none", "cosine"], help="fine-tuning rate schedule")
    parser.add_argument("--level", type=float, default=0.25, help="share of each stage's inputs masked to 0")
    parser.add_argument("--stacks", default="fc", help="comma-separated: fc (SDAE-3), conv")
    parser.add_argument("--variants", default="scratch,sae,sdae", help="comma-separated: scratch, sae (no noise), sdae")
    parser.add_argument("--runs-dir", default="runs/family-sdae")
    parser.add_argument("--seed", type=int, default=0, help="of the pre-training and the fine-tuning")
    parser.add_argument(
        "--pretrained", help="the last stage's run folder of an earlier pre-training (sae or sdae), to fine-tune it again"
    )
    args = parser.parse_args()
    rows = []
    for stack in args.stacks.split(","):
        for variant in args.variants.split(","):
            pretrained = None if variant == "scratch" else args.pretrained or pretrain(stack, variant == "sdae", args)
            row = {"stack": stack, "variant": variant, "pretrained": pretrained}
            rows.append({**row, **finetune(stack, variant, pretrained, args)})
            print(rows[-1], flush=True)
    stages = {k: " -> ".join(str(s.get("units", s.get("filters"))) for s in v) for k, v in STACKS.items()}
    print(
        f"\nMNIST, supervised fine-tuning on 54,000 labelled training images (6,000 for validation), all 10,000 test images;"
        f" greedy stages {args.stage_epochs} epochs each, masking noise {args.level:g}; fine-tuning lr {args.lr:g},"
        f" schedule {args.scheduler}, seed {args.seed}; config {CONFIG}:\n"
        f"{yaml.safe_dump(STACKS, default_flow_style=True, width=200).strip()}"
    )
    print("| stack | pre-training | fine-tuning epochs (best) | test error (%) | paper (%) |\n|---|---|---|---|---|")
    names = {"scratch": "none (from scratch)", "sae": "greedy, no noise", "sdae": "greedy, denoising (masking)"}
    for row in rows:
        print(
            f"| {row['stack']} {stages[row['stack']]} | {names[row['variant']]} | {row['epochs']} ({row['best_epoch']}) |"
            f" {row['error']:.2f} | {PAPER[row['variant']] if row['stack'] == 'fc' else '-'} |"
        )


if __name__ == "__main__":
    main()
