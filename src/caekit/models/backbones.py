"""Classic torchvision backbones as encoders that keep the encoder contract (``EncoderOutput``).

A backbone is cut into stages at its downsampling points, so decoders (SegNet, U-Net, the generic upsampling
decoder) see the same thing as from the plain CAE encoder: the code, and per downsampling its input (skip),
its size and, for max pools, its switches. No weights are downloaded; ``weights`` may name a local safetensors
file holding the torchvision model's state dict.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision import models as tvm

from caekit.errors import ConfigError
from caekit.models.cae import EncoderOutput
from caekit.models.weights import load_weights

BACKBONES = ("resnet18", "resnet34", "vgg11", "vgg16")


class BackboneEncoder(nn.Module):
    """Stages separated by downsampling steps; ``pools[i]`` (a max pool or None) sits between stage i and i+1."""

    def __init__(self, name: str, stages: list[nn.Module], pools: list[nn.MaxPool2d | None], channels: list[int]) -> None:
        super().__init__()
        self.name = name
        self.stages = nn.ModuleList(stages)
        self.pools = nn.ModuleList([p or nn.Identity() for p in pools])
        self._has_pool = [p is not None for p in pools]
        self.stage_channels = channels
        self.out_channels = channels[-1]

    @property
    def reduction(self) -> int:
        """How many times smaller the code is than the input, per side."""
        return 2 ** (len(self.stages) - 1)

    def forward(self, x: Tensor, keep: bool = True) -> EncoderOutput:
        out = EncoderOutput(x)
        for i, stage in enumerate(self.stages):
            if i > 0:
                skip = x
                if self._has_pool[i - 1]:
                    x, switches = self.pools[i - 1](x)
                else:
                    switches = None
                if keep:
                    out.skips.append(skip)
                    out.sizes.append((skip.shape[-2], skip.shape[-1]))
                    out.indices.append(switches)
            x = stage(x)
        out.code = x
        return out

    def feature_maps(self, x: Tensor) -> list[tuple[str, Tensor]]:
        maps = []
        for i, stage in enumerate(self.stages):
            if i > 0 and self._has_pool[i - 1]:
                x = self.pools[i - 1](x)[0]
            x = stage(x)
            maps.append((f"{self.name}.stage{i + 1}", x))
        return maps


def resnet_stem(net: tvm.ResNet, in_channels: int, small_input: bool) -> tvm.ResNet:
    """Adapt a torchvision ResNet's stem in place: for small inputs (28-64 px) a 3x3 stride-1 conv and no max pool,
    as ResNets for CIFAR do; otherwise the published 7x7 stride-2 conv, rebuilt only for other than 3 channels."""
    if small_input:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return net


def _resnet(name: str, in_channels: int, depth: int, small_input: bool, weights: str | None) -> BackboneEncoder:
    net = getattr(tvm, name)(weights=None)
    if weights is not None:  # every tensor of the torchvision model must be there; extra ones are ignored
        load_weights(net, weights, "subset")
    resnet_stem(net, in_channels, small_input)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, *([] if small_input else [net.maxpool]))
    stages: list[nn.Module] = [nn.Sequential(stem, net.layer1), net.layer2, net.layer3, net.layer4][:depth]
    channels = [64, 128, 256, 512][:depth]
    return BackboneEncoder(name, stages, [None] * (depth - 1), channels)


def _vgg(name: str, in_channels: int, depth: int, weights: str | None) -> BackboneEncoder:
    net = getattr(tvm, name)(weights=None)
    if weights is not None:  # every tensor of the torchvision model must be there; extra ones are ignored
        load_weights(net, weights, "subset")
    layers = list(net.features)
    if in_channels != 3:
        first = layers[0]
        layers[0] = nn.Conv2d(in_channels, first.out_channels, first.kernel_size, first.stride, first.padding)
    blocks: list[list[nn.Module]] = [[]]
    for layer in layers:
        if isinstance(layer, nn.MaxPool2d):
            blocks.append([])
        else:
            blocks[-1].append(layer)
    blocks = [b for b in blocks if b][:depth]
    channels = [next(m.out_channels for m in reversed(b) if isinstance(m, nn.Conv2d)) for b in blocks]
    pools = [nn.MaxPool2d(2, 2, return_indices=True) for _ in blocks[1:]]
    return BackboneEncoder(name, [nn.Sequential(*b) for b in blocks], pools, channels)  # type: ignore[arg-type]


def backbone_encoder(
    name: str, in_channels: int = 3, depth: int = 4, small_input: bool = True, weights: str | None = None
) -> BackboneEncoder:
    """A backbone encoder with ``depth`` stages (depth - 1 downsamplings), e.g. ``backbone_encoder("resnet18", 1)``."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}")
    limit = 4 if name.startswith("resnet") else 5
    if not 1 <= depth <= limit:
        raise ConfigError(f"backbone '{name}' has 1 to {limit} stages, not {depth}")
    if name.startswith("resnet"):
        return _resnet(name, in_channels, depth, small_input, weights)
    return _vgg(name, in_channels, depth, weights)
