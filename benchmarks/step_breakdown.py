"""Where a training step of the reference CAE goes on this CPU: each convolution's forward pass, input gradient and
weight gradient timed on its own, against the whole step and the machine's matrix-multiply rate.

    python benchmarks/step_breakdown.py [--batch-size 64] [--rounds 5]

Layers run in channels_last as caekit's engine runs them; the last layer's forward is timed both as PyTorch's
(oneDNN) and as caekit's by-taps kernel. Times are medians over rounds that alternate the parts and the step.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from caekit.layers import _transposed_conv_by_taps
from caekit.models import create_model
from caekit.training.cpu import tune

CL = torch.channels_last


def milliseconds(step: Callable[[], object], repeats: int = 5) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1e3


def matmul_gflops(size: int = 1024) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / milliseconds(lambda: a @ b, 20) / 1e6


def conv_inputs(model: nn.Module, images: torch.Tensor) -> list[tuple[nn.Conv2d | nn.ConvTranspose2d, torch.Tensor, torch.Size]]:
    """Every (transposed) convolution in forward order with the input it gets from ``images`` and its output shape."""
    found = []
    hooks = [
        m.register_forward_hook(lambda m, inputs, out: found.append((m, inputs[0].detach().clone(), out.shape)))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    return found


def parts(conv: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor, first: bool) -> dict[str, Callable[[], object]]:
    """The kernels of one layer in a training step (the first layer needs no input gradient)."""
    transposed = isinstance(conv, nn.ConvTranspose2d)
    plain = (lambda: nn.ConvTranspose2d.forward(conv, x)) if transposed else (lambda: conv(x))
    grad = torch.rand_like(plain())
    kernels: dict[str, Callable[[], object]] = {"forward (oneDNN)": plain}
    if transposed and conv._by_taps(x):
        kernels["forward (by taps)"] = lambda: _transposed_conv_by_taps(
            x, conv.weight, conv.bias, (conv.stride, conv.padding, conv.output_padding)
        )
    for part, mask in (("input gradient", [True, False, False]), ("weight gradient", [False, True, True])):
        if part == "input gradient" and first:
            continue
        kernels[part] = lambda mask=mask: torch.ops.aten.convolution_backward(
            grad,
            x,
            conv.weight,
            [conv.out_channels],
            list(conv.stride),
            list(conv.padding),
            list(conv.dilation),
            transposed,
            list(conv.output_padding) if transposed else [0, 0],
            1,
            mask,
        )
    return kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tune()
    torch.manual_seed(0)
    model = create_model("cae32").to(memory_format=CL)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    images = torch.rand(args.batch_size, 3, 32, 32).contiguous(memory_format=CL)

    def train_step() -> None:
        loss = F.mse_loss(model(images), images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    layers = []
    for i, (conv, x, out_shape) in enumerate(conv_inputs(model, images)):
        spatial = math.prod((x.shape if isinstance(conv, nn.ConvTranspose2d) else out_shape)[-2:])  # positions the kernel visits
        macs = args.batch_size * spatial * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        kind = "transposed " if isinstance(conv, nn.ConvTranspose2d) else ""
        label = f"{kind}{conv.in_channels}->{conv.out_channels} {conv.kernel_size[0]}x{conv.kernel_size[1]} at {x.shape[-2]}x{x.shape[-1]}"
        layers.append((label, macs, parts(conv, x, first=i == 0)))
    for _ in range(3):  # warm up
        train_step()
        with torch.no_grad():
            for _, _, kernels in layers:
                for kernel in kernels.values():
                    kernel()
    times: dict[tuple[str, str], list[float]] = {}
    steps, rates = [], []
    for _ in range(args.rounds):
        with torch.no_grad():
            for label, _, kernels in layers:
                for part, kernel in kernels.items():
                    times.setdefault((label, part), []).append(milliseconds(kernel))
        steps.append(milliseconds(train_step))
        rates.append(matmul_gflops())
    rate, step = max(rates), statistics.median(steps)
    print(
        f"reference CAE (cae32), batch {args.batch_size}, channels_last, {args.rounds} rounds, median ms; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; float32 matrix multiply {rate:.0f} GFLOP/s\n"
    )
    print("| layer | part | ms | GFLOP/s | share of matmul rate |")
    print("|---|---|---:|---:|---:|")
    convolutions = 0.0
    for label, macs, kernels in layers:
        for part in kernels:
            ms = statistics.median(times[(label, part)])
            convolutions += 0.0 if part == "forward (oneDNN)" and "forward (by taps)" in kernels else ms
            print(f"| {label} | {part} | {ms:.2f} | {2 * macs / ms / 1e6:.0f} | {2 * macs / ms / 1e6 / rate:.0%} |")
    print(
        f"\nwhole training step {step:.1f} ms ({args.batch_size / step * 1e3:.0f} images/s, "
        f"{6 * model.plan.macs * args.batch_size / step / 1e6 / rate:.0%} of the matmul rate); its convolutions as caekit "
        f"runs them {convolutions:.1f} ms ({convolutions / step:.0%}); everything else {step - convolutions:.1f} ms"
    )


if __name__ == "__main__":
    main()
