"""Building blocks shared by the models: activations, the unpooling kinds and conv blocks."""

from __future__ import annotations

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
        return F.max_unpool2d(x, indices, self.kernel, self.stride, output_size=size)

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
