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
    Upsample,
    conv3x3,
    encoder_decoder,
)
from caekit.models.cae import EncoderOutput
from caekit.models.registry import register_model


def deconv3x3(cin: int, cout: int, batch_norm: bool) -> nn.Sequential:
    return conv_block(nn.ConvTranspose2d(cin, cout, 3, padding=1, bias=not batch_norm), cout, "relu", batch_norm)


class DeconvNetDecoder(nn.Module):
    def __init__(self, info: EncoderInfo, upsample: str, blocks: tuple[int, ...], batch_norm: bool) -> None:
        super().__init__()
        code = info.code_channels
        self.center = nn.Sequential(conv3x3(code, code, batch_norm), deconv3x3(code, code, batch_norm))
        self.levels = nn.ModuleList()
        channels = code
        skips = info.skip_channels
        for i in reversed(range(len(skips))):
            level = nn.Module()
            level.reduce = conv3x3(channels, skips[i], batch_norm) if channels != skips[i] else nn.Identity()
            level.up = Upsample(upsample, skips[i])
            above = skips[i - 1] if i > 0 else skips[0]
            n = max(1, blocks[i] if i < len(blocks) else blocks[-1])
            level.deconvs = nn.Sequential(*[deconv3x3(skips[i], skips[i], batch_norm) for _ in range(n - 1)],
                                          deconv3x3(skips[i], above, batch_norm))
            self.levels.append(level)
            channels = above
        self.out_channels = channels

    def forward(self, encoded: EncoderOutput) -> Tensor:
        x = self.center(encoded.code)
        for i, level in zip(reversed(range(len(self.levels))), self.levels):
            x = level.up(level.reduce(x), encoded.sizes[i], encoded.indices[i])
            x = level.deconvs(x)
        return x


@register_model("deconvnet")
def deconvnet(input_shape: tuple[int, int, int] | None = None, task: Task = "segment", classes: int = 11, scale: int = 2,
              encoder: str = "vgg", depth: int = 3, width: int = 32, batch_norm: bool = True, upsample: str = "max",
              spec: Any = None, encoder_weights: str | None = None) -> PixelwiseNet:
    """DeconvNet: VGG-16-style encoder, mirrored decoder of max-unpooling and transposed convolutions."""
    blocks = VGG16_BLOCKS[:depth] if encoder == "vgg" else (2,) * depth
    return encoder_decoder(lambda info: DeconvNetDecoder(info, upsample, blocks, batch_norm), input_shape, task, classes,
                           scale, encoder, depth, width, 2, batch_norm, False, upsample, spec, encoder_weights)


__all__ = ["DeconvNetDecoder", "deconvnet"]
