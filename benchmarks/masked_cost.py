"""What masked autoencoding costs a training step: the reference CAE (cae28, nearest upsampling) on 64 MNIST images,
plain reconstruction against ``masked`` with and without re-masking, median images/s of 5 alternating rounds of 30
steps (plain PyTorch steps, no engine).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/masked_cost.py --root data
"""

from __future__ import annotations

import argparse
import time

import torch

from caekit.data.datasets import load_dataset
from caekit.models import create_model
from caekit.training.masked import MaskedReconstruct
from caekit.training.objectives import Objective, Reconstruct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = load_dataset("mnist", "train", root=args.root).unit_images(0, 64)
    objectives: dict[str, Objective] = {
        "reconstruct (BCE)": Reconstruct("bce"),
        "masked, remask off (the default)": MaskedReconstruct(loss="bce"),
        "masked, remask on": MaskedReconstruct(loss="bce", remask=True),
    }
    models = {name: create_model("cae28", upsample="nearest") for name in objectives}
    optimisers = {name: torch.optim.Adam(model.parameters(), 1e-3) for name, model in models.items()}
    rates: dict[str, list[float]] = {name: [] for name in objectives}
    for _ in range(args.rounds):
        for name, objective in objectives.items():
            for step in range(3 + args.steps):  # 3 warm-up steps, then the timed ones
                if step == 3:
                    start = time.perf_counter()
                loss, _ = objective.loss(models[name], {"image": x})
                optimisers[name].zero_grad()
                loss.backward()
                optimisers[name].step()
            rates[name].append(args.steps * len(x) / (time.perf_counter() - start))
    print("| objective | images/s (median) | rounds (min-max) |\n|---|---|---|")
    for name, values in rates.items():
        values.sort()
        print(f"| {name} | {values[len(values) // 2]:.0f} | {values[0]:.0f}-{values[-1]:.0f} |")


if __name__ == "__main__":
    main()
