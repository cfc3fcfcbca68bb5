"""Training throughput of the reference 32x32 CAE: caekit's engine against a minimal plain PyTorch loop.

Both train the same model (same initial weights) on the same CIFAR-shaped batches with Adam and MSE, in the
same process, alternating rounds so that machine noise hits both alike. Also measures this machine's float32
matrix-multiply rate and reports the share of it each loop reaches (about 119 MFLOP per image per step).

    python benchmarks/train_throughput.py [--batch-size 64] [--rounds 3] [--images 2048] [--data DIR]

DIR is a CIFAR-10 folder (train/<class>/*.png); without it random CIFAR-shaped images are used.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from caekit.config import OptimConfig, TrainConfig
from caekit.data import Batches, load_dataset
from caekit.models import create_model
from caekit.train.engine import Engine
from caekit.train.objectives import Reconstruct


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    """Best of three timings of float32 square matrix multiplies."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def plain_loop(model: torch.nn.Module, images: torch.Tensor, batch_size: int, epochs: int) -> float:
    """What a PyTorch user writes first: NCHW floats, DataLoader, Adam, MSE. Returns images/s of the last epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=5e-4)
    loader = DataLoader(TensorDataset(images.float() / 255), batch_size=batch_size, shuffle=True)
    model.train()
    rate = 0.0
    for _ in range(epochs):
        seen, start = 0, time.perf_counter()
        for (x,) in loader:
            loss = F.mse_loss(model(x), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(x)
        rate = seen / (time.perf_counter() - start)
    return rate


def caekit_loop(model: torch.nn.Module, images: torch.Tensor, batch_size: int, epochs: int) -> float:
    """caekit's engine with its defaults (channels_last, in-memory uint8 batches). Returns images/s of the last epoch."""
    engine = Engine(model, Reconstruct("mse"), TrainConfig(batch_size=batch_size, epochs=epochs, progress=False, device="cpu"), OptimConfig())
    batches = Batches({"image": images, "label": torch.zeros(len(images), dtype=torch.long)}, batch_size)
    rate = 0.0
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        rate = engine.train_epoch(batches, epoch)["images_per_s"]
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--data", help="CIFAR-10 class folders (train/<class>/*.png)")
    args = parser.parse_args()

    if args.data:
        pool = load_dataset("cifar10", "train", root=args.data).images
        images = pool[torch.arange(args.images) % len(pool)]
        source = f"CIFAR-10 images from {args.data}"
    else:
        images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8)
        source = "random CIFAR-shaped uint8 images"
    torch.manual_seed(0)
    reference = create_model("cae32")
    flops_per_image = 6 * reference.plan.macs  # forward + backward (2x) multiply-adds, 2 FLOP each

    gflops = matmul_gflops()
    rates: dict[str, list[float]] = {"plain PyTorch loop (NCHW)": [], "caekit engine": []}
    for _ in range(args.rounds):
        rates["plain PyTorch loop (NCHW)"].append(plain_loop(copy.deepcopy(reference), images, args.batch_size, 2))
        rates["caekit engine"].append(caekit_loop(copy.deepcopy(reference), images, args.batch_size, 2))
    gflops = max(gflops, matmul_gflops())

    print(f"reference CAE (cae32), batch {args.batch_size}, {args.images} {source}, {args.rounds} alternating rounds, "
          f"median of each; torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"float32 matrix multiply (1024^3): {gflops:.0f} GFLOP/s; {flops_per_image / 1e6:.0f} MFLOP per image per training step\n")
    print("| loop | images/s | GFLOP/s | share of matmul rate | vs plain |")
    print("|---|---:|---:|---:|---:|")
    plain = statistics.median(rates["plain PyTorch loop (NCHW)"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:.0f} | {rate * flops_per_image / 1e9:.1f} | {rate * flops_per_image / 1e9 / gflops:.0%} | {rate / plain:.2f}x |")


if __name__ == "__main__":
    main()
