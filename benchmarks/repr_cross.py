"""Across datasets: reconstruction quality of autoencoders on their own test images and on another dataset's
(resized and converted to the autoencoder's input shape). Prints a Markdown table.

    python benchmarks/repr_cross.py --ae mnist=RUN --ae cifar10=RUN2 \
        --data mnist:/work/data --data cifar10:/work/data/cifar10 --data folder:/work/data/plankton --images 1000
"""

from __future__ import annotations

import argparse

import torch

from caekit.api import load, reconstruct
from caekit.data.splits import make_splits, split
from caekit.evaluate.metrics import psnr, ssim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ae", action="append", required=True, help="TRAINED_ON=RUN_FOLDER")
    parser.add_argument("--data", action="append", required=True, help="DATASET:ROOT")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| autoencoder trained on | images from | in domain | PSNR (dB) | SSIM |\n|---|---|---|---|---|")
    for item in args.ae:
        trained_on, run = item.split("=", 1)
        model, meta = load(run)
        c, h, _ = meta["image_shape"]
        for spec in args.data:
            name, root = spec.split(":", 1)
            test = make_splits(name, root, h, c, val_fraction=0).test
            if len(test) > args.images:
                test = split(test, 1 - args.images / len(test), 0)[0]
            originals = test.unit_images()
            outputs = reconstruct(model, test)
            label = "plankton" if name == "folder" else name
            print(f"| {trained_on} ({c}x{h}x{h}) | {label} ({len(test)} test images) | {'yes' if label == trained_on else 'no'} | "
                  f"{psnr(outputs, originals).mean():.2f} | {ssim(outputs, originals).mean():.3f} |", flush=True)


if __name__ == "__main__":
    main()
