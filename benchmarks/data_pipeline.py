"""Data-pipeline throughput: caekit's in-memory uint8 batches against torchvision's per-item decoding with DataLoader.

caekit decodes a folder of images once into uint8 (its store in caekit's cache) and every epoch slices batches
from memory; the usual torchvision pipeline (``ImageFolder`` + ``ToTensor`` + ``DataLoader``) opens and decodes every
file in every epoch. Both deliver shuffled float batches in [0, 1] of the same images. The training step of the
reference CAE on those images is measured too: a pipeline is a bottleneck when it is slower than the step it feeds.

    python benchmarks/data_pipeline.py [--data /path/to/cifar10/train] [--batch-size 64] [--workers 0 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch


def caekit_epoch(images: torch.Tensor, batch_size: int, epoch: int) -> float:
    """One shuffled epoch of float batches (what the engine's ``to_device`` makes of them on CPU)."""
    from caekit.data import Batches

    batches = Batches({"image": images, "label": torch.zeros(len(images), dtype=torch.long)}, batch_size, seed=0)
    batches.set_epoch(epoch)
    start = time.perf_counter()
    for batch in batches:
        batch["image"].float().div_(255).contiguous(memory_format=torch.channels_last)
    return len(images) / (time.perf_counter() - start)


def torchvision_epoch(root: Path, batch_size: int, workers: int) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dataset = datasets.ImageFolder(str(root), transform=transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=False)
    start = time.perf_counter()
    seen = sum(len(x) for x, _ in loader)
    return seen / (time.perf_counter() - start)


def training_rate(images: torch.Tensor, batch_size: int) -> float:
    from caekit.config import OptimConfig, TrainConfig
    from caekit.data import Batches
    from caekit.models import create_model
    from caekit.runner import engine_for
    from caekit.training.objectives import Reconstruct

    torch.manual_seed(0)
    c, h, _ = images.shape[1:]
    model = create_model("cae", spec="cae32", input_shape=(c, h, h))
    engine = engine_for(
        model,
        Reconstruct(),
        TrainConfig(batch_size=batch_size, epochs=1, progress=False, device="cpu", cpu_tuning=True),
        OptimConfig(),
    )
    batches = Batches({"image": images, "label": torch.zeros(len(images), dtype=torch.long)}, batch_size)
    return engine.train_epoch(batches, 0)["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("CAEKIT_SHARED_DATA", "../shared/data") + "/cifar10-sample/train",
        help="a folder of class folders of images",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to try")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.data)

    from caekit.data import load_dataset

    with tempfile.TemporaryDirectory() as cache:
        os.environ["CAEKIT_CACHE"] = cache
        start = time.perf_counter()
        data = load_dataset("folder", "train", root=root)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        data = load_dataset("folder", "train", root=root)
        warm = time.perf_counter() - start
    images = data.images

    rates: dict[str, list[float]] = {"caekit in-memory uint8 batches": []}
    rates.update({f"torchvision ImageFolder + DataLoader, {w} workers": [] for w in args.workers})
    for epoch in range(args.rounds):
        rates["caekit in-memory uint8 batches"].append(caekit_epoch(images, args.batch_size, epoch))
        for w in args.workers:
            rates[f"torchvision ImageFolder + DataLoader, {w} workers"].append(torchvision_epoch(root, args.batch_size, w))
    train = statistics.median(training_rate(images, args.batch_size) for _ in range(args.rounds))

    c, h, w = images.shape[1:]
    print(
        f"{len(images)} images ({c}x{h}x{w}) from {root}, batch {args.batch_size}, median of {args.rounds} epochs; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores"
    )
    print(f"caekit decodes the folder once: {cold:.1f} s cold, {warm:.2f} s from its cache\n")
    print("| pipeline | images/s | vs reference-CAE training step |")
    print("|---|---:|---:|")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:,.0f} | {rate / train:.1f}x |")
    print(f"| (training step of the reference CAE, for scale) | {train:,.0f} | 1.0x |")


if __name__ == "__main__":
    main()
