"""U-Net (Ronneberger et al. 2015): skip connections concatenate encoder features into the decoder.

Each decoder level halves the channels with a 1x1 convolution (the channel part of U-Net's 2x2 up-convolution,
done before upsampling so that every upsample kind, max-unpooling included, sees the level's channels), upsamples
to the skip's recorded size, concatenates the skip and applies ``convs`` 3x3 convolutions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from caekit.errors import ConfigError
from caekit.models._pixelwise import (
    EncoderInfo,
    PixelwiseNet,
    Task,
    Upsample,
    conv3x3,
    encoder_decoder,
)
from caekit.models.cae import EncoderOutput
from caekit.models.registry import register_model


class UNetDecoder(nn.Module):
    def __init__(self, info: EncoderInfo, upsample: str, convs: int, batch_norm: bool) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        channels = info.code_channels
        for skip in reversed(info.skip_channels):
            level = nn.Module()
            level.reduce = nn.Conv2d(channels, skip, 1) if channels != skip else nn.Identity()
            level.up = Upsample(upsample, skip)
            level.convs = nn.Sequential(conv3x3(2 * skip, skip, batch_norm), *[conv3x3(skip, skip, batch_norm) for _ in range(convs - 1)])
            self.levels.append(level)
            channels = skip
        self.out_channels = channels

    def forward(self, encoded: EncoderOutput) -> Tensor:
        x = encoded.code
        for i, level in zip(reversed(range(len(self.levels))), self.levels):
            x = level.up(level.reduce(x), encoded.sizes[i], encoded.indices[i])
            x = level.convs(torch.cat([encoded.skips[i], x], dim=1))
        return x


@register_model("unet")
def unet(input_shape: tuple[int, int, int] | None = None, task: Task = "segment", classes: int = 11, scale: int = 2,
         encoder: str = "cae", depth: int = 3, width: int = 32, convs: int = 2, batch_norm: bool = True,
         upsample: str = "transposed", spec: Any = None, encoder_weights: str | None = None) -> PixelwiseNet:
    """U-Net: encoder features concatenated into the decoder at every level (upsample kind swappable)."""
    if convs < 1:
        raise ConfigError(f"a U-Net level needs at least one convolution after the concatenation, got convs={convs}")
    return encoder_decoder(lambda info: UNetDecoder(info, upsample, convs, batch_norm), input_shape, task, classes, scale,
                           encoder, depth, width, convs, batch_norm, True, upsample, spec, encoder_weights)


__all__ = ["UNetDecoder", "unet"]
