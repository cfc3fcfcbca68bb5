"""Autoencoders whose encoder is a classic backbone (ResNet, VGG) and whose decoder is a generic upsampling stack.

The decoder mirrors the backbone's stages: per downsampling step, upsample to the exact size the encoder saw
(``EncoderOutput.sizes``, so odd sizes such as 28 -> 14 -> 7 -> 4 come back exactly) and a 3x3 conv + batch norm +
ReLU to the channels of the stage before; a final 3x3 conv maps to the image channels with a sigmoid (images are
in [0, 1]). Trained with the ``reconstruct`` objective like the plain CAE, and usable by ``encoder_classifier``.
"""

from __future__ import annotations

from torch import Tensor, nn

from caekit.errors import ConfigError
from caekit.layers import MaxUnpool, unpool
from caekit.models.backbones import BackboneEncoder, backbone_encoder
from caekit.models.cae import EncoderOutput
from caekit.models.registry import register_model

UPSAMPLE = ("nearest", "bilinear", "bicubic", "transposed", "max")
CODES = ("flat", "pool")


class UpsamplingDecoder(nn.Module):
    """Upsample + conv-BN-ReLU per encoder downsampling step (conv first for max unpooling), then a conv to the
    image and a sigmoid."""

    def __init__(self, stage_channels: list[int], out_channels: int, upsample: str = "nearest") -> None:
        super().__init__()
        if upsample not in UPSAMPLE:
            raise ConfigError(f"unknown upsampling '{upsample}'; choose one of: {', '.join(UPSAMPLE)}")
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        for cin, cout in zip(stage_channels[::-1][:-1], stage_channels[::-1][1:]):
            self.ups.append(unpool(upsample, cin, 2, 2))
            self.convs.append(
                nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
            )
        self.to_image = nn.Sequential(nn.Conv2d(stage_channels[0], out_channels, 3, padding=1), nn.Sigmoid())

    def forward(self, encoded: EncoderOutput, size: tuple[int, int]) -> Tensor:
        x = encoded.code
        for i, (up, conv) in enumerate(zip(self.ups, self.convs)):
            step = len(encoded.sizes) - 1 - i
            if isinstance(up, MaxUnpool):
                switches = encoded.indices[step]
                if switches is None:
                    raise ConfigError("max unpooling needs a backbone with max pools (vgg); use nearest or bilinear for resnet")
                x = up(conv(x), switches, encoded.sizes[step])  # switches have the earlier stage's channels
            else:
                x = conv(up(x, encoded.sizes[step]))
        if tuple(x.shape[-2:]) != tuple(size):  # a backbone stem that downsamples (large inputs) is undone here
            x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.to_image(x)


class BackboneAutoencoder(nn.Module):
    """Backbone encoder -> upsampling decoder. ``encode`` gives flat codes (the whole last feature map, or its
    global average with ``code="pool"``)."""

    def __init__(
        self, encoder: BackboneEncoder, input_shape: tuple[int, int, int], upsample: str = "nearest", code: str = "flat"
    ) -> None:
        super().__init__()
        if code not in CODES:
            raise ConfigError(f"unknown code '{code}'; choose flat or pool")
        self.encoder = encoder
        self.decoder = UpsamplingDecoder(encoder.stage_channels, input_shape[0], upsample)
        self.input_shape = tuple(input_shape)
        self.code = code
        self._needs_switches = upsample == "max"

    def encode(self, x: Tensor) -> Tensor:
        code = self.encoder(x, keep=False).code
        return code.mean((2, 3)) if self.code == "pool" else code.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        encoded = self.encoder(x, keep=True)
        return self.decoder(encoded, (x.shape[-2], x.shape[-1]))


@register_model("backbone_ae")
def backbone_ae(
    backbone: str = "resnet18",
    input_shape: tuple[int, int, int] = (3, 32, 32),
    depth: int = 3,
    small_input: bool | None = None,
    upsample: str = "nearest",
    code: str = "flat",
    weights: str | None = None,
) -> BackboneAutoencoder:
    """Autoencoder with a ResNet/VGG encoder (``depth`` stages) and a generic upsampling decoder."""
    small = small_input if small_input is not None else max(input_shape[1:]) <= 64
    encoder = backbone_encoder(backbone, input_shape[0], depth, small, weights)
    return BackboneAutoencoder(encoder, tuple(input_shape), upsample, code)  # type: ignore[arg-type]


__all__ = ["BackboneAutoencoder", "UpsamplingDecoder", "backbone_ae"]
