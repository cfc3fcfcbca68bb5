"""The last layer of an image decoder on the CPU: caekit's ConvTranspose2d (by taps) against PyTorch's (oneDNN).

Times the forward pass and a whole training pass (forward + backward) of transposed convolutions with few output
channels, in channels_last as caekit's engine runs them, alternating the two layers round by round.

    python benchmarks/layer_transposed_conv.py [--batch-size 64] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from caekit.layers import ConvTranspose2d
from caekit.training.cpu import tune

# (in channels, out channels, kernel, stride, padding, input size, where it occurs)
SHAPES = [
    (64, 3, 5, 1, 2, 32, "cae32's last layer"),
    (64, 1, 5, 1, 2, 28, "cae28's last layer"),
    (32, 1, 4, 2, 1, 14, "MNIST DCGAN generator's and VAE decoder's last layer"),
    (32, 3, 4, 2, 1, 16, "the same for 32x32 colour images"),
]


def milliseconds(step, repeats: int = 5) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    tune()
    print(
        f"batch {args.batch_size}, channels_last, {args.rounds} alternating rounds, median ms; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("| layer | where | PyTorch forward | caekit forward | speed-up | PyTorch fwd+bwd | caekit fwd+bwd | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for cin, cout, kernel, stride, padding, size, where in SHAPES:
        torch.manual_seed(0)
        ours = ConvTranspose2d(cin, cout, kernel, stride, padding).to(memory_format=torch.channels_last)
        theirs = nn.ConvTranspose2d(cin, cout, kernel, stride, padding).to(memory_format=torch.channels_last)
        theirs.load_state_dict(ours.state_dict())
        x = torch.rand(args.batch_size, cin, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
        grad = torch.rand_like(theirs(x))
        times: dict[str, list[float]] = {}
        for _ in range(args.rounds + 1):  # the first round warms up
            for name, layer in (("theirs", theirs), ("ours", ours)):
                with torch.no_grad():
                    times.setdefault(f"{name} forward", []).append(milliseconds(lambda layer=layer, x=x: layer(x)))
                times.setdefault(f"{name} train", []).append(
                    milliseconds(lambda layer=layer, x=x, grad=grad: layer(x).backward(grad))
                )
        med = {key: statistics.median(values[1:]) for key, values in times.items()}
        print(
            f"| {cin}->{cout}, {kernel}x{kernel}/{stride} p{padding}, {size}x{size} in | {where} | {med['theirs forward']:.2f} | "
            f"{med['ours forward']:.2f} | {med['theirs forward'] / med['ours forward']:.2f}x | {med['theirs train']:.2f} | "
            f"{med['ours train']:.2f} | {med['theirs train'] / med['ours train']:.2f}x |"
        )


if __name__ == "__main__":
    main()
