"""DeconvNet (Noh et al. 2015): a VGG-16-style encoder and a mirrored decoder of unpooling and transposed convolutions.

The encoder is VGG-16's layout (blocks of 2, 2, 3, 3, 3 3x3 convolutions, each followed by a 2x2 max pool; the
width is an option so that it fits small images and CPUs), or any swappable encoder. The centre stands in for
DeconvNet's fc6/fc7 and their deconvolution: a 3x3 convolution and a 3x3 transposed convolution on the code. Each
decoder level mirrors an encoder block: unpool (max-unpooling by default) to the recorded size, then as many 3x3
transposed convolutions as the block had convolutions, the last one going to the channels of the level above.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from caekit.layers import conv_block
from caekit.models._pixelwise import (
    VGG16_BLOCKS,
    EncoderInfo,
    EncoderOptions,
    LevelDecoder,
    PixelwiseNet,
    conv3x3,
    encoder_decoder,
)
from caekit.models.registry import register_model


def deconv3x3(cin: int, cout: int, batch_norm: bool) -> nn.Sequential:
    return conv_block(nn.ConvTranspose2d(cin, cout, 3, padding=1, bias=not batch_norm), cout, "relu", batch_norm)


class DeconvNetDecoder(LevelDecoder):
    """A 3x3 conv and deconv at the code, then per downsampling step, deepest first: [3x3 conv to the level's
    channels] -> unpool -> ``blocks`` 3x3 deconvs, the last one to the channels of the level above."""

    def __init__(self, info: EncoderInfo, upsample: str, blocks: tuple[int, ...], batch_norm: bool) -> None:
        code, skips = info.code_channels, info.skip_channels

        def deconvs(i: int, channels: int) -> tuple[nn.Module, int]:
            above = skips[i - 1] if i > 0 else skips[0]
            n = max(1, blocks[i] if i < len(blocks) else blocks[-1])
            return nn.Sequential(
                *[deconv3x3(channels, channels, batch_norm) for _ in range(n - 1)], deconv3x3(channels, above, batch_norm)
            ), above

        center = nn.Sequential(conv3x3(code, code, batch_norm), deconv3x3(code, code, batch_norm))
        super().__init__(info, upsample, lambda cin, cout: conv3x3(cin, cout, batch_norm), deconvs, "deconvs", center=center)


@register_model("deconvnet", options=EncoderOptions)
def deconvnet(encoder: str = "vgg", upsample: str = "max", **options: Any) -> PixelwiseNet:
    """DeconvNet: VGG-16-style encoder, mirrored decoder of max-unpooling and transposed convolutions."""
    shared = EncoderOptions(encoder=encoder, **options)
    blocks = VGG16_BLOCKS[: shared.depth] if encoder == "vgg" else (shared.convs,) * shared.depth
    return encoder_decoder(lambda info: DeconvNetDecoder(info, upsample, blocks, shared.batch_norm), shared, upsample)


__all__ = ["DeconvNetDecoder", "deconvnet"]
