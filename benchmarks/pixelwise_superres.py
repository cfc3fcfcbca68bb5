"""Super-resolution x2 and x4: PSNR/SSIM of SegNet, U-Net, DeconvNet and FCN against bicubic upsampling.

Low-resolution inputs are made from the test images by antialiased bicubic downscaling; each model predicts a
residual over bicubic upsampling (see caekit.models.fcn). Prints one Markdown table per dataset; PSNR and SSIM are
per-image means over the whole test split. Sized for a small shared CPU: see the options.

    python benchmarks/pixelwise_superres.py --dataset cifar10 --root /work/shared/data/cifar10-sample
    python benchmarks/pixelwise_superres.py --dataset mnist --root /work/data --limit 2000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from caekit.api import train
from caekit.training.pixelwise import bicubic, downscale
from caekit.viz.pixelwise import superres_rows

OUT = Path(__file__).parent / "results" / "pixelwise"
MODELS = ("segnet", "unet", "deconvnet", "fcn")


def run(model: str, scale: int, args: argparse.Namespace) -> dict[str, float]:
    name = f"sr-{args.dataset}-x{scale}-{model}"
    config = {
        "name": name,
        "runs_dir": args.runs_dir,
        "model": {
            "name": model,
            "args": {
                "task": "superres",
                "scale": scale,
                "width": args.width,
                "depth": args.depth,
                **({"upsample": "bilinear"} if model != "fcn" else {}),
            },
        },
        "data": {"name": args.dataset, "root": args.root, "limit": args.limit, "val_fraction": 0.1},
        "objective": {"name": "superres", "args": {"loss": args.loss}},
        "optim": {"lr": args.lr, "weight_decay": 0.0},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "progress": False},
    }
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start
    images = result.splits.test.unit_images(0, 8)
    low, target = downscale(images, scale)
    with torch.inference_mode():
        outputs = result.model(low)
    superres_rows(
        low,
        bicubic(low, scale),
        outputs,
        target,
        OUT / f"{name}.png",
        title=f"{model} x{scale}: PSNR {result.test['psnr']:.2f} dB vs bicubic {result.test['bicubic_psnr']:.2f} dB",
    )
    row = {
        "model": model,
        "scale": scale,
        **result.test,
        "seconds": seconds,
        "train_images": len(result.splits.train),
        "test_images": len(result.splits.test),
        "epochs": len(result.history),
    }
    print(
        f"{name}: PSNR {row['psnr']:.2f} (bicubic {row['bicubic_psnr']:.2f}), SSIM {row['ssim']:.4f} "
        f"(bicubic {row['bicubic_ssim']:.4f}), {seconds:.0f} s",
        flush=True,
    )
    return row


def _verdict(gain: float, margin: float = 0.1) -> str:
    """Gains within ``margin`` dB of bicubic are reported as not beating it."""
    return "yes" if gain > margin else "**no** (= bicubic)" if gain >= -margin else "**no** (worse)"


def table(rows: list[dict[str, float]], dataset: str) -> str:
    lines = [
        f"**{dataset} test split, super-resolution**",
        "",
        "| scale | model | PSNR dB | bicubic PSNR dB | gain dB | SSIM | bicubic SSIM | beats bicubic | train s |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| x{r['scale']} | {r['model']} | {r['psnr']:.2f} | {r['bicubic_psnr']:.2f} | {r['psnr_gain']:+.2f} | "
            f"{r['ssim']:.4f} | {r['bicubic_ssim']:.4f} | {_verdict(r['psnr_gain'])} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--root", default="/work/shared/data/cifar10-sample")
    parser.add_argument("--limit", type=int, default=None, help="training images")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--loss", default="l1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-dir", default="/tmp/caekit-pixelwise-bench")
    args = parser.parse_args()
    torch.set_num_threads(1)  # on a small shared CPU, one thread per process avoids spin-wait contention
    rows = [run(model, scale, args) for scale in args.scales for model in args.models]
    print(table(rows, args.dataset), flush=True)
    (OUT / f"superres-{args.dataset}.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
