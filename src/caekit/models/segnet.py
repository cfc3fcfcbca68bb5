"""SegNet (Badrinarayanan et al. 2017): max pooling whose switches drive max-unpooling in a mirrored decoder.

Each decoder level brings the features to the channels of the matching encoder level, upsamples them to that
level's recorded size (by default with the pool's switches, so values return to where the maxima were) and refines
them with learned 3x3 convolutions. Nothing is concatenated: only the switches travel from encoder to decoder.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from caekit.models._pixelwise import EncoderInfo, PixelwiseNet, Task, conv3x3, decoder_levels, encoder_decoder, run_levels
from caekit.models.cae import EncoderOutput
from caekit.models.registry import register_model


class SegNetDecoder(nn.Module):
    """Per downsampling step, deepest first: [3x3 conv to the level's channels] -> upsample -> ``convs`` 3x3 convs."""

    def __init__(self, info: EncoderInfo, upsample: str, convs: int, batch_norm: bool) -> None:
        super().__init__()
        self.levels, self.out_channels = decoder_levels(
            info, upsample, lambda cin, cout: conv3x3(cin, cout, batch_norm), "convs",
            lambda _, c: (nn.Sequential(*[conv3x3(c, c, batch_norm) for _ in range(convs)]), c))

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return run_levels(self.levels, encoded, encoded.code, "convs")


@register_model("segnet")
def segnet(input_shape: tuple[int, int, int] | None = None, task: Task = "segment", classes: int = 11, scale: int = 2,
           encoder: str = "cae", depth: int = 3, width: int = 32, convs: int = 2, batch_norm: bool = True,
           upsample: str = "max", spec: Any = None, encoder_weights: str | None = None) -> PixelwiseNet:
    """SegNet: max-pool switches drive max-unpooling in the decoder (upsample kind swappable)."""
    return encoder_decoder(lambda info: SegNetDecoder(info, upsample, convs, batch_norm), input_shape, task, classes, scale,
                           encoder, depth, width, convs, batch_norm, False, upsample, spec, encoder_weights)


__all__ = ["SegNetDecoder", "segnet"]
