"""Across datasets: autoencoders on their own test images and on other datasets' (resized and converted to the
autoencoder's input shape): reconstruction PSNR/SSIM, and the accuracy / macro F1 of a linear probe (logistic
regression on standardised codes) trained on N labelled training images per class of the target dataset.
A "raw pixels" row per dataset gives the probe's floor. Prints a Markdown table.

    python benchmarks/repr_cross.py --ae mnist=RUN --ae cifar10=RUN2 --ae plankton=RUN3 \
        --data mnist:/work/data --data cifar10:/work/data/cifar10 --data folder:/work/data/plankton \
        --images 2000 --per-class 100
"""

from __future__ import annotations

import argparse

import torch

from caekit.data.splits import labelled_sample, make_splits, split
from caekit.evaluate.classification import linear_probe
from caekit.inference import encode, load, reconstruct
from caekit.metrics import psnr, ssim


def _datasets(specs: list[str], shape: tuple[int, int, int], images: int, per_class: int):
    """(label, probe training sample, test subset) of each DATASET:ROOT, converted to ``shape``."""
    c, h, _ = shape
    for spec in specs:
        name, root = spec.split(":", 1)
        splits = make_splits(name, root, h, c, val_fraction=0)
        test = splits.test if len(splits.test) <= images else split(splits.test, 1 - images / len(splits.test), 0)[0]
        yield ("plankton" if name == "folder" else name), labelled_sample(splits.train, per_class=per_class, seed=0), test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ae", action="append", required=True, help="TRAINED_ON=RUN_FOLDER")
    parser.add_argument("--data", action="append", required=True, help="DATASET:ROOT")
    parser.add_argument("--images", type=int, default=1000, help="test images per dataset (a seeded stratified subset)")
    parser.add_argument("--per-class", type=int, default=100, help="labelled training images per class for the probe")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        "| autoencoder trained on | images from | in domain | PSNR (dB) | SSIM | probe accuracy | probe macro F1 |\n"
        "|---|---|---|---|---|---|---|"
    )
    pixels_done: set[tuple[str, tuple[int, ...]]] = set()
    for item in args.ae:
        trained_on, run = item.split("=", 1)
        model, meta = load(run)
        shape = tuple(meta["image_shape"])
        for label, sample, test in _datasets(args.data, shape, args.images, args.per_class):
            if (label, shape) not in pixels_done:  # the probe on raw pixels of the same size: the floor to beat
                pixels_done.add((label, shape))
                raw = linear_probe(
                    sample.unit_images().flatten(1).numpy(),
                    sample.labels,
                    test.unit_images().flatten(1).numpy(),
                    test.labels,
                    test.classes,
                )
                print(
                    f"| (raw pixels, {'x'.join(map(str, shape))}) | {label} ({len(test)} test images) | - | - | - | "
                    f"{raw.accuracy:.3f} | {raw.macro['f1']:.3f} |",
                    flush=True,
                )
            originals = test.unit_images()
            outputs = reconstruct(model, test)
            probe = linear_probe(encode(model, sample), sample.labels, encode(model, test), test.labels, test.classes)
            print(
                f"| {trained_on} ({'x'.join(map(str, shape))}) | {label} ({len(test)} test images) | "
                f"{'yes' if label == trained_on else 'no'} | {psnr(outputs, originals).mean():.2f} | "
                f"{ssim(outputs, originals).mean():.3f} | {probe.accuracy:.3f} | {probe.macro['f1']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
