"""Classic CNN classifiers trained from scratch, the baselines for the encoder classifiers.

The baselines are the classic networks, torchvision's where it has them (``weights=None``), adapted to small inputs
(28x28 MNIST, 32x32 CIFAR, small plankton crops) by changing only strides, pool rounding and the FC input size:
the stack of layers (how many convolutions, pools, inception blocks, residual stages, FC layers) stays as published.
``weights`` may name a local safetensors state dict; tensors whose shapes fit are loaded, the rest are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from torch import Tensor, nn
from torchvision import models as tvm

from caekit.models.backbones import resnet_stem
from caekit.models.registry import register_model
from caekit.models.weights import load_weights

Shape = tuple[int, int, int]


def _is_small(input_shape: tuple[int, ...]) -> bool:
    return max(input_shape[1:]) <= 64


def _with_weights(model: nn.Module, weights: str | Path | None) -> nn.Module:
    """Load a local safetensors state dict (or caekit checkpoint) into ``model``: tensors whose name and shape fit
    are taken, the others (an adapted stem, another number of classes) are reported in a warning."""
    return model if weights is None else load_weights(model, weights, "fitting")


class LeNet5(nn.Module):
    """LeCun et al. 1998: conv 6@5x5, pool, conv 16@5x5, pool, fc 120, fc 84, fc classes (ReLU and max pools).

    28x28 inputs are zero-padded by 2 in the first convolution (the paper's 32x32 field); other sizes are pooled
    to the paper's 5x5 before the FC layers.
    """

    def __init__(self, num_classes: int = 10, input_shape: Shape = (1, 32, 32)) -> None:
        super().__init__()
        c, h, _ = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2 if h < 32 else 0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class CifarQuick(nn.Module):
    """Caffe's ``cifar10_quick``: conv 32@5x5, max pool 3/2, conv 32@5x5, avg pool 3/2, conv 64@5x5, avg pool 3/2,
    fc 64, fc classes; pools round up as Caffe's do, so 28x28 and 32x32 inputs both end at 4x4."""

    def __init__(self, num_classes: int = 10, input_shape: Shape = (3, 32, 32)) -> None:
        super().__init__()
        c = input_shape[0]
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 5, padding=2),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, 64), nn.Linear(64, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def _round_up_pools(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True


@register_model("lenet5")
def lenet5(num_classes: int = 10, input_shape: Shape = (1, 28, 28), weights: str | None = None) -> LeNet5:
    """LeNet-5 (ReLU, max pooling), for 28x28 and larger inputs."""
    return _with_weights(LeNet5(num_classes, cast(Shape, tuple(input_shape))), weights)  # type: ignore[return-value]


@register_model("cifar10_quick")
def cifar10_quick(num_classes: int = 10, input_shape: Shape = (3, 32, 32), weights: str | None = None) -> CifarQuick:
    """Caffe's CIFAR-10 quick network (3 conv, 3 pool, 2 FC)."""
    return _with_weights(CifarQuick(num_classes, cast(Shape, tuple(input_shape))), weights)  # type: ignore[return-value]


@dataclass(frozen=True)
class FCHead:
    """The fully connected top that AlexNet and VGG16 share: two hidden layers of ``hidden`` units (None: the
    builder's width for the input size) and ``dropout`` around them, where the paper puts it."""

    hidden: int | None = None
    dropout: float = 0.5


@register_model("alexnet", options=FCHead)
def alexnet(num_classes: int = 10, input_shape: Shape = (3, 32, 32), weights: str | None = None, **head: Any) -> nn.Module:
    """torchvision's AlexNet (5 conv, 3 pools, 3 FC), adapted to small inputs.

    Small inputs: a 3x3 stride-1 first conv, pools rounding up, a 2x2 pooled FC input. ``hidden`` is the width of
    the two FC layers (4096 as published; 1024 by default for small inputs).
    """
    fc = FCHead(**head)
    hidden, dropout = fc.hidden, fc.dropout
    c = input_shape[0]
    small = _is_small(tuple(input_shape))
    net = tvm.alexnet(weights=None, num_classes=num_classes, dropout=dropout)
    if small or c != 3:
        net.features[0] = nn.Conv2d(c, 64, 3, 1, 1) if small else nn.Conv2d(c, 64, 11, 4, 2)
    if small:
        _round_up_pools(net.features)
        net.avgpool = nn.AdaptiveAvgPool2d(2)
    side = 2 if small else 6
    width = hidden or (1024 if small else 4096)
    net.classifier = nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(256 * side * side, width),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(width, width),
        nn.ReLU(inplace=True),
        nn.Linear(width, num_classes),
    )
    return _with_weights(net, weights)


@register_model("vgg16", options=FCHead)
def vgg16(
    num_classes: int = 10, input_shape: Shape = (3, 32, 32), batch_norm: bool = True, weights: str | None = None, **head: Any
) -> nn.Module:
    """torchvision's VGG16 (13 conv, 5 pools, 3 FC; batch norm by default), adapted to small inputs.

    Small inputs: pools round up (28 -> 1x1 as 32 does) and the FC layers read the 1x1x512 map (width ``hidden``,
    default 512; 4096 otherwise).
    """
    fc = FCHead(**head)
    hidden, dropout = fc.hidden, fc.dropout
    c = input_shape[0]
    small = _is_small(tuple(input_shape))
    net = (tvm.vgg16_bn if batch_norm else tvm.vgg16)(weights=None, num_classes=num_classes, dropout=dropout)
    if c != 3:
        first = net.features[0]
        net.features[0] = nn.Conv2d(c, first.out_channels, 3, padding=1)
    side = 7
    if small:
        _round_up_pools(net.features)
        net.avgpool = nn.AdaptiveAvgPool2d(1)
        side = 1
    width = hidden or (512 if small else 4096)
    net.classifier = nn.Sequential(
        nn.Linear(512 * side * side, width),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(width, width),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(width, num_classes),
    )
    return _with_weights(net, weights)


@register_model("resnet18")
def resnet18(num_classes: int = 10, input_shape: Shape = (3, 32, 32), weights: str | None = None) -> nn.Module:
    """torchvision's ResNet-18; small inputs get the CIFAR stem (3x3 stride-1 conv, no max pool)."""
    net = resnet_stem(tvm.resnet18(weights=None, num_classes=num_classes), input_shape[0], _is_small(tuple(input_shape)))
    return _with_weights(net, weights)


@register_model("googlenet")
def googlenet(
    num_classes: int = 10, input_shape: Shape = (3, 32, 32), dropout: float = 0.2, weights: str | None = None
) -> nn.Module:
    """torchvision's GoogLeNet (Inception v1, no auxiliary heads), adapted to small inputs.

    Small inputs: a 3x3 stride-1 first conv, so the nine inception blocks run at 8x8, 4x4 and 2x2 on 32x32 images.
    """
    from torchvision.models.googlenet import BasicConv2d

    c = input_shape[0]
    net = tvm.googlenet(
        weights=None, num_classes=num_classes, aux_logits=False, init_weights=True, transform_input=False, dropout=dropout
    )
    if _is_small(tuple(input_shape)):
        net.conv1 = BasicConv2d(c, 64, kernel_size=3, stride=1, padding=1)
    elif c != 3:
        net.conv1 = BasicConv2d(c, 64, kernel_size=7, stride=2, padding=3)
    return _with_weights(net, weights)


BASELINES = ("lenet5", "cifar10_quick", "alexnet", "vgg16", "resnet18", "googlenet")


__all__ = ["BASELINES", "CifarQuick", "FCHead", "LeNet5", "alexnet", "cifar10_quick", "googlenet", "lenet5", "resnet18", "vgg16"]
