"""U-Net (Ronneberger et al. 2015): skip connections concatenate encoder features into the decoder.

Each decoder level halves the channels with a 1x1 convolution (the channel part of U-Net's 2x2 up-convolution,
done before upsampling so that every upsample kind, max-unpooling included, sees the level's channels), upsamples
to the skip's recorded size, concatenates the skip and applies ``convs`` 3x3 convolutions.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from caekit.errors import ConfigError
from caekit.models._pixelwise import EncoderInfo, EncoderOptions, LevelDecoder, PixelwiseNet, conv3x3, encoder_decoder
from caekit.models.registry import register_model


class UNetDecoder(LevelDecoder):
    """Per downsampling step, deepest first: [1x1 conv to the level's channels] -> upsample -> concatenate the
    encoder's features of that level -> ``convs`` 3x3 convs."""

    def __init__(self, info: EncoderInfo, upsample: str, convs: int, batch_norm: bool) -> None:
        def body(_: int, c: int) -> tuple[nn.Module, int]:
            return nn.Sequential(conv3x3(2 * c, c, batch_norm), *[conv3x3(c, c, batch_norm) for _ in range(convs - 1)]), c

        super().__init__(info, upsample, lambda cin, cout: nn.Conv2d(cin, cout, 1), body, concat_skips=True)


@register_model("unet", options=EncoderOptions)
def unet(upsample: str = "transposed", **options: Any) -> PixelwiseNet:
    """U-Net: encoder features concatenated into the decoder at every level (upsample kind swappable)."""
    shared = EncoderOptions(**options)
    if shared.convs < 1:
        raise ConfigError(f"a U-Net level needs at least one convolution after the concatenation, got convs={shared.convs}")
    return encoder_decoder(
        lambda info: UNetDecoder(info, upsample, shared.convs, shared.batch_norm), shared, upsample, keep_skips=True
    )


__all__ = ["UNetDecoder", "unet"]
