"""Classifiers: an autoencoder's encoder plus a head ("CAE(encode) + FC"), and classic CNNs trained from scratch.

``encoder_classifier`` puts a linear or small MLP head on the flat codes of an autoencoder (a trained run folder,
a .safetensors checkpoint, or a fresh model of the same architecture for the from-scratch control), in one of three
modes: ``linear`` (frozen encoder, linear probe), ``mlp`` (frozen encoder, small MLP) or ``finetune`` (everything
trains; the ``classify`` objective can give the encoder a lower learning rate).

The baselines are the classic networks, torchvision's where it has them (``weights=None``), adapted to small inputs
(28x28 MNIST, 32x32 CIFAR, small plankton crops) by changing only strides, pool rounding and the FC input size:
the stack of layers (how many convolutions, pools, inception blocks, residual stages, FC layers) stays as published.
``weights`` may name a local safetensors state dict; tensors whose shapes fit are loaded, the rest are reported.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from torchvision import models as tvm

from caekit.errors import CheckpointError, ConfigError
from caekit.models.registry import create_model, register_model

MODES = ("linear", "mlp", "finetune")
Shape = tuple[int, int, int]


# --------------------------------------------------------------------------------------------- encoder + head


class EncoderClassifier(nn.Module):
    """``autoencoder.encode(x)`` -> head -> logits. A frozen encoder has no trainable parameters and stays in eval mode."""

    def __init__(self, autoencoder: nn.Module, num_classes: int, input_shape: Shape, mode: str = "finetune",
                 head: str | None = None, hidden: int = 256, dropout: float = 0.5, code_norm: bool = True) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"unknown classifier mode '{mode}'; choose one of: {', '.join(MODES)}")
        if not hasattr(autoencoder, "encode"):
            raise ConfigError(f"{type(autoencoder).__name__} has no encode(); it cannot be the encoder of a classifier")
        head = head or ("linear" if mode == "linear" else "mlp")
        if head not in ("linear", "mlp"):
            raise ConfigError(f"unknown head '{head}'; choose linear or mlp")
        self.mode, self.head_kind, self.input_shape = mode, head, tuple(input_shape)
        _drop_decoder(autoencoder)
        self.encoder = autoencoder
        was_training = autoencoder.training
        with torch.no_grad():
            code_size = autoencoder.eval().encode(torch.zeros(2, *input_shape)).shape[1]
        autoencoder.train(was_training)
        self.code_size = int(code_size)
        # A reconstruction-trained code is far from zero-mean, unit-scale (MNIST cae28: mean ~7, std ~4, 100x a
        # fresh encoder's), which stalls a freshly initialised head; a parameter-free batch norm puts every code
        # unit on one scale first, as linear-probe protocols do. The from-scratch control gets the same head.
        norm: list[nn.Module] = [nn.BatchNorm1d(self.code_size, affine=False)] if code_norm else []
        if head == "linear":
            layers: list[nn.Module] = [nn.Linear(self.code_size, num_classes)]
        else:
            layers = [nn.Linear(self.code_size, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                      nn.Linear(hidden, num_classes)]
        self.head: nn.Module = nn.Sequential(*norm, *layers)
        self.frozen = mode in ("linear", "mlp")
        if self.frozen:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> EncoderClassifier:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # batch-norm statistics of a frozen encoder must not drift either
        return self

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder.encode(x)

    def forward(self, x: Tensor) -> Tensor:
        if self.frozen:
            with torch.no_grad():
                codes = self.encoder.encode(x)
            return self.head(codes.float())
        return self.head(self.encoder.encode(x))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group, so the encoder can get its own learning rate."""
        groups = {"encoder": [p for p in self.encoder.parameters() if p.requires_grad],
                  "head": [p for p in self.head.parameters() if p.requires_grad]}
        return {k: v for k, v in groups.items() if v}


def _drop_decoder(autoencoder: nn.Module) -> None:
    """Drop the decoder of autoencoders whose ``encode`` does not use it (it would only sit in checkpoints)."""
    from caekit.models.backbone_ae import BackboneAutoencoder
    from caekit.models.cae import ConvAutoencoder

    if isinstance(autoencoder, (ConvAutoencoder, BackboneAutoencoder)):
        autoencoder.decoder = None  # type: ignore[assignment]
        if isinstance(autoencoder, ConvAutoencoder) and autoencoder.bottleneck is not None:
            autoencoder.bottleneck.decode = None  # type: ignore[assignment]


def _model_spec(autoencoder: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(autoencoder, str):
        return autoencoder, {}
    if not isinstance(autoencoder, dict) or "name" not in autoencoder:
        raise ConfigError("autoencoder must be a model name or a mapping {name: ..., args: {...}}")
    return autoencoder["name"], dict(autoencoder.get("args") or {})


def build_autoencoder(autoencoder: str | dict[str, Any] = "cae28", pretrained: str | Path | None = None,
                      input_shape: Shape | None = None) -> tuple[nn.Module, Shape]:
    """The autoencoder a classifier starts from: trained (``pretrained`` run folder or checkpoint) or freshly initialised."""
    if pretrained is not None:
        from caekit.api import load

        if not Path(pretrained).exists():
            raise CheckpointError(f"pretrained autoencoder '{pretrained}' does not exist (give a run folder or .safetensors)")
        model, meta = load(pretrained)
        shape = tuple(meta["image_shape"])
        if input_shape is not None and tuple(input_shape) != shape:
            raise ConfigError(f"the pretrained autoencoder takes {'x'.join(map(str, shape))} images, the data are "
                              f"{'x'.join(map(str, input_shape))}; set data.image_size/channels to match")
        return model.train(), shape  # type: ignore[return-value]
    name, args = _model_spec(autoencoder)
    import inspect

    from caekit.models.registry import MODELS

    if input_shape is not None and "input_shape" in inspect.signature(MODELS.get(name)).parameters:
        args.setdefault("input_shape", list(input_shape))
    model = create_model(name, **args)
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is None:
        raise ConfigError(f"cannot tell the input shape of '{name}'; give input_shape")
    return model, tuple(shape)  # type: ignore[return-value]


@register_model("encoder_classifier")
def encoder_classifier(autoencoder: str | dict[str, Any] = "cae28", pretrained: str | None = None, num_classes: int = 10,
                       mode: str = "finetune", head: str | None = None, hidden: int = 256, dropout: float = 0.5,
                       code_norm: bool = True, input_shape: Shape | None = None) -> EncoderClassifier:
    """Encoder + FC head (modes: linear probe, frozen MLP, finetune) on a trained or fresh autoencoder."""
    model, shape = build_autoencoder(autoencoder, pretrained, input_shape)
    return EncoderClassifier(model, num_classes, shape, mode, head, hidden, dropout, code_norm)


# --------------------------------------------------------------------------------------------- classic baselines


def _is_small(input_shape: Shape) -> bool:
    return max(input_shape[1:]) <= 64


def load_weights(model: nn.Module, weights: str | Path | None) -> nn.Module:
    """Load a local safetensors state dict; tensors of a different shape (an adapted stem, the classes) are skipped."""
    if weights is None:
        return model
    path = Path(weights)
    if path.suffix != ".safetensors" or not path.is_file():
        raise CheckpointError(f"weights must be a local .safetensors file; '{weights}' is not one")
    state = load_file(str(path))
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise CheckpointError(f"no tensor in '{weights}' fits {type(model).__name__}")
    skipped = sorted(set(own) - set(fitting))
    if skipped:
        warnings.warn(f"{len(skipped)} tensors not taken from '{path.name}' (adapted or missing): {', '.join(skipped[:4])}", stacklevel=2)
    model.load_state_dict(fitting, strict=False)
    return model


class LeNet5(nn.Module):
    """LeCun et al. 1998: conv 6@5x5, pool, conv 16@5x5, pool, fc 120, fc 84, fc classes (ReLU and max pools).

    28x28 inputs are zero-padded by 2 in the first convolution (the paper's 32x32 field); other sizes are pooled
    to the paper's 5x5 before the FC layers.
    """

    def __init__(self, num_classes: int = 10, input_shape: Shape = (1, 32, 32)) -> None:
        super().__init__()
        c, h, _ = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2 if h < 32 else 0), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(5))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
                                        nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Linear(84, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class CifarQuick(nn.Module):
    """Caffe's ``cifar10_quick``: conv 32@5x5, max pool 3/2, conv 32@5x5, avg pool 3/2, conv 64@5x5, avg pool 3/2,
    fc 64, fc classes; pools round up as Caffe's do, so 28x28 and 32x32 inputs both end at 4x4."""

    def __init__(self, num_classes: int = 10, input_shape: Shape = (3, 32, 32)) -> None:
        super().__init__()
        c = input_shape[0]
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(inplace=True), nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True), nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.AdaptiveAvgPool2d(4))
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
    return load_weights(LeNet5(num_classes, tuple(input_shape)), weights)  # type: ignore[return-value]


@register_model("cifar10_quick")
def cifar10_quick(num_classes: int = 10, input_shape: Shape = (3, 32, 32), weights: str | None = None) -> CifarQuick:
    """Caffe's CIFAR-10 quick network (3 conv, 3 pool, 2 FC)."""
    return load_weights(CifarQuick(num_classes, tuple(input_shape)), weights)  # type: ignore[return-value]


@register_model("alexnet")
def alexnet(num_classes: int = 10, input_shape: Shape = (3, 32, 32), hidden: int | None = None, dropout: float = 0.5,
            weights: str | None = None) -> nn.Module:
    """torchvision's AlexNet (5 conv, 3 pools, 3 FC), adapted to small inputs.

    Small inputs: a 3x3 stride-1 first conv, pools rounding up, a 2x2 pooled FC input. ``hidden`` is the width of the two FC layers (4096 as published; 1024 by default for small inputs).
    """
    c, h, _ = input_shape
    small = _is_small(tuple(input_shape))
    net = tvm.alexnet(weights=None, num_classes=num_classes, dropout=dropout)
    if small or c != 3:
        net.features[0] = nn.Conv2d(c, 64, 3, 1, 1) if small else nn.Conv2d(c, 64, 11, 4, 2)
    if small:
        _round_up_pools(net.features)
        net.avgpool = nn.AdaptiveAvgPool2d(2)
    side = 2 if small else 6
    width = hidden or (1024 if small else 4096)
    net.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(256 * side * side, width), nn.ReLU(inplace=True),
                                   nn.Dropout(dropout), nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, num_classes))
    return load_weights(net, weights)


@register_model("vgg16")
def vgg16(num_classes: int = 10, input_shape: Shape = (3, 32, 32), hidden: int | None = None, dropout: float = 0.5,
          batch_norm: bool = True, weights: str | None = None) -> nn.Module:
    """torchvision's VGG16 (13 conv, 5 pools, 3 FC; batch norm by default), adapted to small inputs.

    Small inputs: pools round up (28 -> 1x1 as 32 does) and the FC layers read the 1x1x512 map (width ``hidden``,
    default 512; 4096 otherwise).
    """
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
    net.classifier = nn.Sequential(nn.Linear(512 * side * side, width), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                   nn.Linear(width, width), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(width, num_classes))
    return load_weights(net, weights)


@register_model("resnet18")
def resnet18(num_classes: int = 10, input_shape: Shape = (3, 32, 32), weights: str | None = None) -> nn.Module:
    """torchvision's ResNet-18; small inputs get the CIFAR stem (3x3 stride-1 conv, no max pool)."""
    c = input_shape[0]
    net = tvm.resnet18(weights=None, num_classes=num_classes)
    if _is_small(tuple(input_shape)):
        net.conv1 = nn.Conv2d(c, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif c != 3:
        net.conv1 = nn.Conv2d(c, 64, 7, 2, 3, bias=False)
    return load_weights(net, weights)


@register_model("googlenet")
def googlenet(num_classes: int = 10, input_shape: Shape = (3, 32, 32), dropout: float = 0.2,
              weights: str | None = None) -> nn.Module:
    """torchvision's GoogLeNet (Inception v1, no auxiliary heads), adapted to small inputs.

    Small inputs: a 3x3 stride-1 first conv, so the nine inception blocks run at 8x8, 4x4 and 2x2 on 32x32 images.
    """
    from torchvision.models.googlenet import BasicConv2d

    c = input_shape[0]
    net = tvm.googlenet(weights=None, num_classes=num_classes, aux_logits=False, init_weights=True, transform_input=False,
                        dropout=dropout)
    if _is_small(tuple(input_shape)):
        net.conv1 = BasicConv2d(c, 64, kernel_size=3, stride=1, padding=1)
    elif c != 3:
        net.conv1 = BasicConv2d(c, 64, kernel_size=7, stride=2, padding=3)
    return load_weights(net, weights)


BASELINES = ("lenet5", "cifar10_quick", "alexnet", "vgg16", "resnet18", "googlenet")

__all__ = ["BASELINES", "MODES", "CifarQuick", "EncoderClassifier", "LeNet5", "alexnet", "build_autoencoder", "cifar10_quick",
           "encoder_classifier", "googlenet", "lenet5", "load_weights", "resnet18", "vgg16"]
