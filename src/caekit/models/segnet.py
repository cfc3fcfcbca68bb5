"""SegNet (Badrinarayanan et al. 2017): max pooling whose switches drive max-unpooling in a mirrored decoder.

Each decoder level brings the features to the channels of the matching encoder level, upsamples them to that
level's recorded size (by default with the pool's switches, so values return to where the maxima were) and refines
them with learned 3x3 convolutions. Nothing is concatenated: only the switches travel from encoder to decoder.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from caekit.models._pixelwise import EncoderInfo, EncoderOptions, LevelDecoder, PixelwiseNet, conv3x3, encoder_decoder
from caekit.models.registry import register_model


class SegNetDecoder(LevelDecoder):
    """Per downsampling step, deepest first: [3x3 conv to the level's channels] -> upsample -> ``convs`` 3x3 convs."""

    def __init__(self, info: EncoderInfo, upsample: str, convs: int, batch_norm: bool) -> None:
        super().__init__(
            info,
            upsample,
            lambda cin, cout: conv3x3(cin, cout, batch_norm),
            lambda _, c: (nn.Sequential(*[conv3x3(c, c, batch_norm) for _ in range(convs)]), c),
        )


@register_model("segnet", options=EncoderOptions)
def segnet(upsample: str = "max", **options: Any) -> PixelwiseNet:
    """SegNet: max-pool switches drive max-unpooling in the decoder (upsample kind swappable)."""
    shared = EncoderOptions(**options)
    return encoder_decoder(lambda info: SegNetDecoder(info, upsample, shared.convs, shared.batch_norm), shared, upsample)


__all__ = ["SegNetDecoder", "segnet"]
