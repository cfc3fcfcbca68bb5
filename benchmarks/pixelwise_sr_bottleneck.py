"""Why SegNet-like decoders barely beat bicubic at super-resolution: the information bottleneck.

Same budget for every variant (steps, batch, lr, width): SegNet at depth 2 and 1 (less pooling, so more of the
low-resolution detail survives to the decoder), U-Net at depth 2 (a full-resolution skip carries it), and the FCN.
Prints the x2 PSNR gain over bicubic on CIFAR-10 sample test images.

    python benchmarks/pixelwise_sr_bottleneck.py --root /work/shared/data/cifar10-sample --steps 300
"""

from __future__ import annotations

import argparse

import torch

from caekit.data import load_dataset
from caekit.metrics import psnr
from caekit.models import create_model
from caekit.training.pixelwise import bicubic, downscale

VARIANTS = [
    ("segnet", {"depth": 2}),
    ("segnet", {"depth": 1}),
    ("deconvnet", {"depth": 1}),
    ("fcn", {"depth": 1}),
    ("unet", {"depth": 2}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/work/shared/data/cifar10-sample")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--scale", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = load_dataset("cifar10", "train", root=args.root).unit_images()
    test = load_dataset("cifar10", "test", root=args.root).unit_images(0, 500)
    low_train, high_train = downscale(train, args.scale)
    low_test, high_test = downscale(test, args.scale)
    base = psnr(bicubic(low_test, args.scale), high_test).mean().item()
    print(f"| model | depth | PSNR dB | gain over bicubic ({base:.2f} dB) |\n|---|---:|---:|---:|")
    for name, options in VARIANTS:
        torch.manual_seed(0)
        extra = {"upsample": "bilinear"} if name != "fcn" else {}
        model = create_model(
            name, input_shape=(3, 32, 32), task="superres", scale=args.scale, width=args.width, **options, **extra
        )
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        for step in range(args.steps):
            idx = order[(step * 32) % len(train) :][:32]
            loss = (model(low_train[idx]) - high_train[idx]).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            score = psnr(model(low_test).clamp(0, 1), high_test).mean().item()
        print(f"| {name} | {options['depth']} | {score:.2f} | {score - base:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
