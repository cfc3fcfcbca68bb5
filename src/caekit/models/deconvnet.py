"""DeconvNet (Noh et al. 2015): a VGG-16-style encoder and a mirrored decoder of unpooling and transposed convolutions.

The encoder is VGG-16's layout (blocks of 2, 2, 3, 3, 3 3x3 convolutions, each followed by a 2x2 max pool; the
width is an option so that it fits small images and CPUs), or any swappable encoder. The centre stands in for
DeconvNet's fc6/fc7 and their deconvolution: a 3x3 convolution and a 3x3 transposed convolution on the code. Each
decoder level mirrors an encoder block: unpool (max-unpooling by default) to the recorded size, then as many 3x3
transposed convolutions as the block had convolutions, the last one going to the channels of the level above.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from caekit.layers import conv_block
from caekit.models._pixelwise import (
    VGG16_BLOCKS,
    EncoderInfo,
    PixelwiseNet,
    Task,
    conv3x3,
    decoder_levels,
    encoder_decoder,
    run_levels,
)
from caekit.models.cae import EncoderOutput
from caekit.models.registry import register_model


def deconv3x3(cin: int, cout: int, batch_norm: bool) -> nn.Sequential:
    return conv_block(nn.ConvTranspose2d(cin, cout, 3, padding=1, bias=not batch_norm), cout, "relu", batch_norm)


class DeconvNetDecoder(nn.Module):
    """A 3x3 conv and deconv at the code, then per downsampling step, deepest first: [3x3 conv to the level's
    channels] -> unpool -> ``blocks`` 3x3 deconvs, the last one to the channels of the level above."""

    def __init__(self, info: EncoderInfo, upsample: str, blocks: tuple[int, ...], batch_norm: bool) -> None:
        super().__init__()
        code, skips = info.code_channels, info.skip_channels
        self.center = nn.Sequential(conv3x3(code, code, batch_norm), deconv3x3(code, code, batch_norm))

        def deconvs(i: int, channels: int) -> tuple[nn.Module, int]:
            above = skips[i - 1] if i > 0 else skips[0]
            n = max(1, blocks[i] if i < len(blocks) else blocks[-1])
            return nn.Sequential(*[deconv3x3(channels, channels, batch_norm) for _ in range(n - 1)],
                                 deconv3x3(channels, above, batch_norm)), above

        self.levels, self.out_channels = decoder_levels(info, upsample, lambda cin, cout: conv3x3(cin, cout, batch_norm),
                                                        "deconvs", deconvs)

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return run_levels(self.levels, encoded, self.center(encoded.code), "deconvs")


@register_model("deconvnet")
def deconvnet(input_shape: tuple[int, int, int] | None = None, task: Task = "segment", classes: int = 11, scale: int = 2,
              encoder: str = "vgg", depth: int = 3, width: int = 32, batch_norm: bool = True, upsample: str = "max",
              spec: Any = None, encoder_weights: str | None = None) -> PixelwiseNet:
    """DeconvNet: VGG-16-style encoder, mirrored decoder of max-unpooling and transposed convolutions."""
    blocks = VGG16_BLOCKS[:depth] if encoder == "vgg" else (2,) * depth
    return encoder_decoder(lambda info: DeconvNetDecoder(info, upsample, blocks, batch_norm), input_shape, task, classes,
                           scale, encoder, depth, width, 2, batch_norm, False, upsample, spec, encoder_weights)


__all__ = ["DeconvNetDecoder", "deconvnet"]
