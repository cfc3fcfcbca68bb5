"""How training time grows with image size and with dataset size, for the reference CAE on this machine.

Image size: the reference CAE (Conv 64@5x5, pool, Conv 32@3x3, pool, Conv 16@3x3, pool; mirrored decoder) built
for N x N inputs, trained with caekit's engine on the same number of images at each size; the cost per pixel should
stay about flat (the work is linear in pixels). Dataset size: one epoch at 32 x 32 for growing image counts; the
time per 1,000 images should stay about flat too (the in-memory pipeline adds nothing per epoch).

    python benchmarks/scaling.py [--sizes 16 32 64 128] [--counts 500 1000 2000 4000] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from caekit.config import OptimConfig, TrainConfig
from caekit.data import Batches
from caekit.models import create_model
from caekit.runner import engine_for
from caekit.spec import reference_cae
from caekit.training.objectives import Reconstruct


def epoch_seconds(size: int, count: int, batch_size: int, repeats: int) -> float:
    """Median seconds of a training epoch over ``count`` random uint8 3 x size x size images (after a warm-up epoch)."""
    torch.manual_seed(0)
    model = create_model("cae", spec=reference_cae(3, size, name=f"cae{size}"))
    engine = engine_for(
        model,
        Reconstruct(),
        TrainConfig(batch_size=batch_size, epochs=1, progress=False, device="cpu", cpu_tuning=True),
        OptimConfig(),
    )
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8)
    batches = Batches({"image": images, "label": torch.zeros(count, dtype=torch.long)}, batch_size)
    engine.train_epoch(
        Batches({"image": images[: 2 * batch_size], "label": torch.zeros(2 * batch_size, dtype=torch.long)}, batch_size), 0
    )
    return statistics.median(engine.train_epoch(batches, e)["seconds"] for e in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--images-per-size", type=int, default=512)
    parser.add_argument("--counts", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"reference CAE, batch {args.batch_size}, random uint8 images, median of {args.repeats} epochs; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print(f"Image size ({args.images_per_size} images of 3 x N x N):\n")
    print("| N | seconds per epoch | ms per image | ns per pixel | vs 32 x 32 per pixel |")
    print("|---:|---:|---:|---:|---:|")
    rows = []
    for size in args.sizes:
        seconds = epoch_seconds(size, args.images_per_size, args.batch_size, args.repeats)
        rows.append((size, seconds, seconds / args.images_per_size / (size * size) * 1e9))
    reference = next((r[2] for r in rows if r[0] == 32), rows[0][2])
    for size, seconds, per_pixel in rows:
        print(
            f"| {size} | {seconds:.2f} | {seconds / args.images_per_size * 1000:.2f} | {per_pixel:.0f} | {per_pixel / reference:.2f}x |"
        )

    print("\nDataset size (3 x 32 x 32):\n")
    print("| images | seconds per epoch | seconds per 1,000 images |")
    print("|---:|---:|---:|")
    for count in args.counts:
        seconds = epoch_seconds(32, count, args.batch_size, args.repeats)
        print(f"| {count:,} | {seconds:.2f} | {seconds / count * 1000:.2f} |")


if __name__ == "__main__":
    main()
