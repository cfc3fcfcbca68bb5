"""Building blocks shared by the models: activations, the unpooling kinds, conv blocks and a transposed
convolution that is faster on the CPU when it has few output channels."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    module = ACTIVATIONS[name]
    return module(inplace=True) if module in (nn.ReLU, nn.LeakyReLU, nn.ELU) else module()


def pad_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero-pad at the bottom/right up to ``size``: the rows a floor-mode pool dropped have no source."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    return F.pad(x, (0, dw, 0, dh)) if dh or dw else x


class MaxUnpool(nn.Module):
    """Max-unpooling: each value goes back to where the mirrored max pool found it (the pool's switches)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor, indices: Tensor, size: tuple[int, int]) -> Tensor:
        # torch's stub wants sequences for kernel_size and stride; it takes ints (as _pair does) too
        return F.max_unpool2d(x, indices, self.kernel, self.stride, output_size=size)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


class PatchUnpool(nn.Module):
    """Copy each value into its whole k x k patch (``average``) or into the top-left cell only (``fixed``)."""

    def __init__(self, kind: str, kernel: int) -> None:
        super().__init__()
        if kind not in ("average", "fixed"):
            raise ValueError(f"unknown patch unpooling '{kind}'")
        self.kind, self.kernel = kind, kernel

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        k = self.kernel
        n, c, h, w = x.shape
        if self.kind == "average":
            out = x[:, :, :, None, :, None].expand(n, c, h, k, w, k).reshape(n, c, h * k, w * k)
        else:
            out = x.new_zeros((n, c, h, k, w, k))
            out[:, :, :, 0, :, 0] = x
            out = out.reshape(n, c, h * k, w * k)
        return pad_to(out, size)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, kernel={self.kernel}"


class Interpolate(nn.Module):
    """nearest, bilinear or bicubic upsampling to an exact output size."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        corners = {} if self.mode == "nearest" else {"align_corners": False}
        return F.interpolate(x, size=size, mode=self.mode, **corners)

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


class LearnedUnpool(nn.Module):
    """Strided transposed convolution with as many channels out as in: upsampling the network learns."""

    def __init__(self, channels: int, kernel: int, stride: int, output_padding: tuple[int, int]) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(channels, channels, kernel, stride, output_padding=output_padding)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return self.deconv(x)


def unpool(kind: str, channels: int, kernel: int, stride: int, output_padding: tuple[int, int] = (0, 0)) -> nn.Module:
    """The upsampling module for one of the spec's kinds; call it as ``m(x, size)`` (max: ``m(x, indices, size)``)."""
    if kind == "max":
        return MaxUnpool(kernel, stride)
    if kind in ("average", "fixed"):
        return PatchUnpool(kind, kernel)
    if kind == "transposed":
        return LearnedUnpool(channels, kernel, stride, output_padding)
    return Interpolate(kind)


def conv_block(conv: nn.Module, channels: int, act: str, batch_norm: bool) -> nn.Sequential:
    """conv -> optional batch norm -> activation."""
    layers = [conv]
    if batch_norm:
        layers.append(nn.BatchNorm2d(channels))
    layers.append(activation(act))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """ResNet's basic block at a fixed shape: act(x + BN(conv3x3(act(BN(conv3x3(x)))))); leaky ReLU for a slope > 0."""

    def __init__(self, channels: int, negative_slope: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.act = nn.LeakyReLU(negative_slope, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


Geometry = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]  # stride, padding, output padding


def _transposed_conv_by_taps(x: Tensor, weight: Tensor, bias: Tensor | None, geometry: Geometry) -> Tensor:
    """Transposed convolution as one batched matrix multiply into a plane per (output channel, tap), then the sum
    of those planes, each placed (with the stride's spacing) at its tap's offset."""
    n, cin, h, w = x.shape
    cout, kh, kw = weight.shape[1:]
    (sh, sw), (ph, pw), (oh, ow) = geometry
    # (n, cin, h*w) without a copy in either memory format
    flat = x.reshape(n, cin, h * w) if x.is_contiguous() else x.permute(0, 2, 3, 1).reshape(n, h * w, cin).transpose(1, 2)
    taps = torch.matmul(weight.reshape(cin, cout * kh * kw).t(), flat).view(n, cout, kh, kw, h, w)
    full = x.new_zeros(n, cout, (h - 1) * sh + kh + oh, (w - 1) * sw + kw + ow)
    for i in range(kh):
        for j in range(kw):
            full[:, :, i : i + (h - 1) * sh + 1 : sh, j : j + (w - 1) * sw + 1 : sw] += taps[:, :, i, j]
    out = full[:, :, ph : full.shape[2] - ph, pw : full.shape[3] - pw]
    result = torch.empty(out.shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(x))
    return torch.add(out, bias.view(1, -1, 1, 1), out=result) if bias is not None else result.copy_(out)


def _memory_format(x: Tensor) -> torch.memory_format:
    """The layout PyTorch's own convolutions give their output for input ``x``."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


class _TransposedConvByTaps(torch.autograd.Function):
    """Forward by taps, backward by PyTorch's own (oneDNN) convolution gradients."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: tuple[int, int],
        padding: tuple[int, int],
        output_padding: tuple[int, int],
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry, ctx.has_bias = (stride, padding, output_padding), bias is not None
        return _transposed_conv_by_taps(x, weight, bias, ctx.geometry)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, output_padding = ctx.geometry
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        grad = grad.contiguous(memory_format=_memory_format(x))  # oneDNN is slower on mixed layouts
        grads = torch.ops.aten.convolution_backward(
            grad,
            x,
            weight,
            [weight.shape[1]] if ctx.has_bias else None,
            list(stride),
            list(padding),
            [1, 1],
            True,
            list(output_padding),
            1,
            wanted,
        )
        return grads[0], grads[1], grads[2], None, None, None


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters and state dict) with a faster CPU forward where it has at most 3
    output channels, at least 32 input ones and a kernel of 4x4 or more: an image decoder's or generator's last layer.

    oneDNN computes a transposed convolution in blocks of 8 output channels, so with 3 (or 1) most of each vector is
    wasted; a matrix multiply into one plane per output channel and kernel tap, then the shifted sum of the planes,
    wastes nothing (see docs/results/cae.md for the layers timed).
    """

    def _by_taps(self, x: Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64)
            and x.dim() == 4
            and self.out_channels <= 3
            and self.in_channels >= 32
            and self.kernel_size[0] * self.kernel_size[1] >= 16
            and self.groups == 1
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
            and all(p < k for p, k in zip(cast("tuple[int, ...]", self.padding), self.kernel_size))  # never str here
            and all(o < s for o, s in zip(self.output_padding, self.stride))  # else PyTorch's error
            and not torch.is_autocast_enabled("cpu")
            # an exported or compiled graph takes PyTorch's own operator, which every exporter and backend knows
            and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()
        )

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is None and self._by_taps(x):
            return _TransposedConvByTaps.apply(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)
        return super().forward(x, output_size)
