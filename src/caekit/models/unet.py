"""U-Net (Ronneberger et al. 2015): skip connections concatenate encoder features into the decoder.

Each decoder level halves the channels with a 1x1 convolution (the channel part of U-Net's 2x2 up-convolution,
done before upsampling so that every upsample kind, max-unpooling included, sees the level's channels), upsamples
to the skip's recorded size, concatenates the skip and applies ``convs`` 3x3 convolutions.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from caekit.errors import ConfigError
from caekit.models._pixelwise import EncoderInfo, PixelwiseNet, Task, conv3x3, decoder_levels, encoder_decoder, run_levels
from caekit.models.cae import EncoderOutput
from caekit.models.registry import register_model


class UNetDecoder(nn.Module):
    """Per downsampling step, deepest first: [1x1 conv to the level's channels] -> upsample -> concatenate the
    encoder's features of that level -> ``convs`` 3x3 convs."""

    def __init__(self, info: EncoderInfo, upsample: str, convs: int, batch_norm: bool) -> None:
        super().__init__()
        self.levels, self.out_channels = decoder_levels(
            info, upsample, lambda cin, cout: nn.Conv2d(cin, cout, 1), "convs",
            lambda _, c: (nn.Sequential(conv3x3(2 * c, c, batch_norm), *[conv3x3(c, c, batch_norm) for _ in range(convs - 1)]), c))

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return run_levels(self.levels, encoded, encoded.code, "convs", concat_skips=True)


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
