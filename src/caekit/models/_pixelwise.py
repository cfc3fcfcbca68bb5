"""The plumbing every pixel-wise encoder-decoder shares: swappable encoders, upsampling steps and task heads.

Every pixel-wise model (``segnet``, ``unet``, ``deconvnet``, ``fcn``) is an encoder, a decoder that walks the
encoder's downsampling steps backwards (``EncoderOutput``: skips, sizes and max-pool switches per step) and a head:

* ``task="segment"``: a 1x1 convolution to ``classes`` logits at the input size (softmax is in the loss);
* ``task="superres"``: the network runs on the low-resolution input; a sub-pixel convolution (conv to C*s*s
  channels, ``PixelShuffle(s)``) predicts a residual that is added to the bicubic upsampling of the input
  (VDSR/ESPCN style), so an untrained model starts near bicubic and training learns only what bicubic misses.

Encoders: ``"cae"`` (the plain CAE encoder: conv blocks and max pools, from a spec or from depth/width), ``"vgg"``
(the same, in VGG-16's 2-2-3-3-3 block pattern) or a torchvision backbone (``resnet18``, ``resnet34``, ``vgg11``,
``vgg16``; no downloads, optional local safetensors weights). Odd input sizes come back exactly: every upsampling
targets the size recorded by the encoder, and the output is finally brought to the input size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from caekit.errors import ConfigError, SpecError
from caekit.layers import MaxUnpool, conv_block, pad_to, unpool
from caekit.models.backbones import BACKBONES, backbone_encoder
from caekit.models.cae import ConvEncoder, EncoderOutput
from caekit.spec import UPSAMPLE_KINDS, AutoencoderSpec, Conv, Pool, as_shape, load_spec, parse_spec, plan

Task = Literal["segment", "superres"]
ENCODERS = ("cae", "vgg", *BACKBONES)
VGG16_BLOCKS = (2, 2, 3, 3, 3)  # convolutions per block of VGG-16


@dataclass(frozen=True)
class EncoderInfo:
    """Channels a decoder must expect: per downsampling step (encoder order) its skip, then the code."""

    skip_channels: tuple[int, ...]
    code_channels: int
    has_switches: bool  # every downsampling is a max pool that returns its switches


def _block_channels(width: int, level: int, max_width: int) -> int:
    return min(width * 2**level, max_width)


def plain_encoder_spec(
    in_channels: int,
    size: tuple[int, int],
    depth: int,
    width: int,
    convs: int | tuple[int, ...],
    batch_norm: bool = True,
    center: bool = True,
    max_width: int = 512,
) -> AutoencoderSpec:
    """A CAE encoder spec: ``depth`` blocks of 3x3 conv-BN-ReLU then a 2x2 max pool; channels double per block.

    ``convs`` is the number of convolutions per block (an int, or one per block); ``center`` adds a block after
    the last pool (U-Net's bottom), otherwise the code is the last pool's output (SegNet, DeconvNet).
    """
    per_block = (convs,) * (depth + 1) if isinstance(convs, int) else tuple(convs)
    stages: list[Conv | Pool] = []
    for level in range(depth):
        channels = _block_channels(width, level, max_width)
        stages += [Conv(filters=channels, kernel=3, padding=1, batch_norm=batch_norm)] * per_block[level]
        stages.append(Pool(kind="max"))
    if center:
        channels = _block_channels(width, depth, max_width)
        stages += [Conv(filters=channels, kernel=3, padding=1, batch_norm=batch_norm)] * per_block[min(depth, len(per_block) - 1)]
    return AutoencoderSpec(name="pixelwise-encoder", input_shape=(in_channels, *size), encoder=stages, upsample="nearest")


def build_encoder(
    encoder: str,
    in_channels: int,
    size: tuple[int, int],
    depth: int,
    width: int,
    convs: int,
    batch_norm: bool,
    center: bool,
    spec: AutoencoderSpec | dict[str, Any] | str | None = None,
    encoder_weights: str | None = None,
) -> tuple[nn.Module, EncoderInfo]:
    """The encoder named by ``encoder`` and what its ``EncoderOutput`` will hold."""
    if encoder in ("cae", "vgg"):
        if spec is not None:
            resolved = (
                parse_spec(spec) if isinstance(spec, dict) else spec if isinstance(spec, AutoencoderSpec) else load_spec(spec)
            )
            resolved = parse_spec(
                {**resolved.model_dump(), "input_shape": (in_channels, *size), "decoder": "mirror", "bottleneck": None},
                resolved.name,
            )
        elif encoder == "vgg":
            resolved = plain_encoder_spec(in_channels, size, depth, width, VGG16_BLOCKS[:depth], batch_norm, center=False)
        else:
            resolved = plain_encoder_spec(in_channels, size, depth, width, convs, batch_norm, center)
        layers = plan(resolved).encoder
        pools = [layer for layer in layers if layer.kind == "pool"]
        if not pools:
            raise SpecError(f"encoder spec '{resolved.name}' has no pool: a pixel-wise decoder needs downsampling steps")
        info = EncoderInfo(tuple(p.in_shape[0] for p in pools), layers[-1].out_shape[0], all(p.mode == "max" for p in pools))
        return ConvEncoder(layers), info
    if encoder in BACKBONES:
        net = backbone_encoder(encoder, in_channels, depth + 1, small_input=True, weights=encoder_weights)
        channels = tuple(net.stage_channels)
        return net, EncoderInfo(channels[:-1], channels[-1], encoder.startswith("vgg"))
    raise ConfigError(f"unknown encoder '{encoder}'; choose one of: {', '.join(ENCODERS)}")


def check_upsample(kind: str, info: EncoderInfo, encoder: str) -> None:
    if kind not in UPSAMPLE_KINDS:
        raise ConfigError(f"unknown upsample kind '{kind}'; choose one of: {', '.join(UPSAMPLE_KINDS)}")
    if kind == "max" and not info.has_switches:
        raise ConfigError(
            f"max-unpooling needs the switches of max pools, and encoder '{encoder}' downsamples without "
            "them; use encoder cae, vgg, vgg11 or vgg16, or another upsample kind"
        )


class Upsample(nn.Module):
    """One x2 upsampling step of any kind, to an exact recorded size; ``max`` uses the matching pool's switches."""

    def __init__(self, kind: str, channels: int) -> None:
        super().__init__()
        self.kind = kind
        self.module = unpool(kind, channels, 2, 2)

    def forward(self, x: Tensor, size: tuple[int, int], indices: Tensor | None = None) -> Tensor:
        if isinstance(self.module, MaxUnpool):
            if indices is None:
                raise ValueError("max-unpooling needs the encoder's switches")
            return self.module(x, indices, size)
        return pad_to(self.module(x, size), size)


def conv3x3(cin: int, cout: int, batch_norm: bool = True) -> nn.Sequential:
    return conv_block(nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm), cout, "relu", batch_norm)


class LevelDecoder(nn.Module):
    """A decoder that mirrors the encoder level by level, deepest first (SegNet, U-Net, DeconvNet).

    ``center`` runs on the code first. Level i reduces its input to the channels of encoder level i
    (``reduce(cin, cout)``; identity when they agree), upsamples to that level's size and runs
    ``body(i, channels) -> (module, channels out)``, kept as ``level.<body_name>``; with ``concat_skips`` the body
    sees the encoder's features of that level beside its input (U-Net).
    """

    def __init__(
        self,
        info: EncoderInfo,
        upsample: str,
        reduce: Callable[[int, int], nn.Module],
        body: Callable[[int, int], tuple[nn.Module, int]],
        body_name: str = "convs",
        concat_skips: bool = False,
        center: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.center = center or nn.Identity()
        self.body_name, self.concat_skips = body_name, concat_skips
        self.levels = nn.ModuleList()
        channels, skips = info.code_channels, info.skip_channels
        for i in reversed(range(len(skips))):
            level = nn.Module()
            level.reduce = reduce(channels, skips[i]) if channels != skips[i] else nn.Identity()
            level.up = Upsample(upsample, skips[i])
            module, channels = body(i, skips[i])
            level.add_module(body_name, module)
            self.levels.append(level)
        self.out_channels = channels

    def forward(self, encoded: EncoderOutput) -> Tensor:
        x = self.center(encoded.code)
        for i, level in zip(
            reversed(range(len(self.levels))), self.levels
        ):  # torch types a level's submodules as Tensor | Module
            x = level.up(level.reduce(x), encoded.sizes[i], encoded.indices[i])  # type: ignore[operator]
            x = getattr(level, self.body_name)(torch.cat([encoded.skips[i], x], dim=1) if self.concat_skips else x)
        return x


class SegmentationHead(nn.Module):
    """1x1 convolution to per-class logits."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(features, classes, 1)

    def forward(self, features: Tensor, x: Tensor) -> Tensor:
        return self.classifier(features)


class SuperResolutionHead(nn.Module):
    """Sub-pixel convolution to a residual at ``scale`` times the size, added to the bicubic upsampling of ``x``."""

    def __init__(self, features: int, channels: int, scale: int, project: bool = True) -> None:
        super().__init__()
        self.scale = scale
        self.shuffle = nn.PixelShuffle(scale)
        self.conv: nn.Module = nn.Identity()  # project=False: the features already are the C*s*s sub-pixel channels
        if project:
            self.conv = nn.Conv2d(features, channels * scale * scale, 3, padding=1)
            nn.init.zeros_(self.conv.weight)  # start exactly at bicubic
            assert self.conv.bias is not None  # a Conv2d made with its bias
            nn.init.zeros_(self.conv.bias)

    def forward(self, features: Tensor, x: Tensor) -> Tensor:
        size = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        base = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
        return base + self.shuffle(self.conv(features))


@dataclass(frozen=True)
class EncoderOptions:
    """What every encoder-decoder network is built from; each builder (segnet, unet, ...) adds its decoder's own."""

    input_shape: tuple[int, int, int] | list[int] | None = None
    task: Task = "segment"
    classes: int = 11
    scale: int = 2
    encoder: str = "cae"
    depth: int = 3
    width: int = 32
    convs: int = 2
    batch_norm: bool = True
    spec: Any = None
    encoder_weights: str | None = None


class PixelwiseNet(nn.Module):
    """Encoder -> decoder (features at the input size) -> task head."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        features: int,
        options: EncoderOptions,
        in_channels: int,
        config: dict[str, Any],
    ) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.task, self.classes = options.task, options.classes
        self.scale = options.scale if options.task == "superres" else 1
        self.in_channels = in_channels
        self.config = {"task": options.task, "encoder": options.encoder, "depth": options.depth, "width": options.width, **config}
        self.input_shape = as_shape(options.input_shape) if options.input_shape else None
        self.head: nn.Module = (
            SegmentationHead(features, self.classes)
            if self.task == "segment"
            else SuperResolutionHead(features, in_channels, options.scale)
        )

    @property
    def out_channels(self) -> int:
        return self.classes if self.task == "segment" else self.in_channels

    def features(self, x: Tensor) -> Tensor:
        encoded = self.encoder(x)
        y = self.decoder(encoded)
        if y.shape[-2:] != x.shape[-2:]:  # e.g. a backbone stem that downsamples before its first skip
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return y

    def forward(self, x: Tensor) -> Tensor:
        """Segment: logits [N, classes, H, W]. Superres: images [N, C, H*s, W*s] (not clamped)."""
        return self.head(self.features(x), x)

    def encode(self, x: Tensor) -> Tensor:
        """The encoder's code, flattened per image."""
        return self.encoder(x, keep=False).code.flatten(1)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.items())


def check_task(task: str, classes: int, scale: int) -> None:
    if task not in ("segment", "superres"):
        raise ConfigError(f"unknown task '{task}'; choose segment or superres")
    if task == "segment" and classes < 2:
        raise ConfigError(f"segmentation needs at least 2 classes, got {classes}")
    if task == "superres" and scale < 2:
        raise ConfigError(f"super-resolution needs a scale of at least 2, got {scale}")


def network_input(
    input_shape: tuple[int, int, int] | list[int] | None, task: str, scale: int, depth: int
) -> tuple[int, tuple[int, int]]:
    """Channels and the size the encoder will see (super-resolution models see the low-resolution image)."""
    if input_shape is None:
        return 3, (2 ** (depth + 1),) * 2
    c, h, w = (int(v) for v in input_shape)
    if task == "superres":
        h, w = h // scale, w // scale
    if min(h, w) < 2**depth:
        raise ConfigError(
            f"a {h}x{w} {'low-resolution ' if task == 'superres' else ''}input is too small for {depth} "
            f"downsamplings; lower depth to {max(1, min(h, w).bit_length() - 1)} or use larger images"
        )
    return c, (h, w)


def pixelwise_encoder(options: EncoderOptions, upsample: str, keep_skips: bool) -> tuple[nn.Module, EncoderInfo, int]:
    """Check the task, build the encoder and check that ``upsample`` suits it; also returns the input channels."""
    check_task(options.task, options.classes, options.scale)
    in_channels, size = network_input(options.input_shape, options.task, options.scale, options.depth)
    net, info = build_encoder(
        options.encoder,
        in_channels,
        size,
        options.depth,
        options.width,
        options.convs,
        options.batch_norm,
        keep_skips,
        options.spec,
        options.encoder_weights,
    )
    check_upsample(upsample, info, options.encoder)
    return net, info, in_channels


def encoder_decoder(
    make_decoder: Callable[[EncoderInfo], nn.Module], options: EncoderOptions, upsample: str, keep_skips: bool = False
) -> PixelwiseNet:
    """The build every decoder-with-features network shares: the encoder, ``make_decoder(info)`` (which exposes
    ``out_channels``) and the task's head."""
    net, info, in_channels = pixelwise_encoder(options, upsample, keep_skips)
    decoder = make_decoder(info)
    features = cast(int, decoder.out_channels)  # every decoder here sets it
    return PixelwiseNet(net, decoder, features, options, in_channels, {"upsample": upsample})


__all__ = [
    "ENCODERS",
    "VGG16_BLOCKS",
    "EncoderInfo",
    "EncoderOptions",
    "LevelDecoder",
    "PixelwiseNet",
    "SegmentationHead",
    "SuperResolutionHead",
    "Task",
    "Upsample",
    "build_encoder",
    "check_task",
    "check_upsample",
    "conv3x3",
    "encoder_decoder",
    "network_input",
    "pixelwise_encoder",
    "plain_encoder_spec",
]
