"""FCN (Long et al. 2015), the pixel-wise baseline: per-class scores on the code, upsampled back to the input.

With ``skips=0`` the scores of the code alone are upsampled (FCN-32s style); with ``skips=k`` the scores of the
last k skips are added on the way up (``skips=2``: FCN-8s style). The encoders, upsampling steps and the
super-resolution head are the shared pixel-wise ones (``caekit.models._pixelwise``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from caekit.errors import ConfigError
from caekit.models._pixelwise import EncoderInfo, EncoderOptions, PixelwiseNet, SuperResolutionHead, Upsample, pixelwise_encoder
from caekit.models.cae import EncoderOutput
from caekit.models.registry import register_model


class FCNDecoder(nn.Module):
    """FCN: per-class scores from the code, upsampled x2 per step; the scores of the last ``skips`` skips are added."""

    def __init__(self, info: EncoderInfo, scores: int, upsample: str, skips: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(info.code_channels, scores, 1)
        levels = len(info.skip_channels)
        self.skip_scores = nn.ModuleDict(
            {str(i): nn.Conv2d(info.skip_channels[i], scores, 1) for i in range(levels - skips, levels)}
        )
        self.ups = nn.ModuleList([Upsample(upsample, scores) for _ in range(levels)])

    def forward(self, encoded: EncoderOutput) -> Tensor:
        y = self.score(encoded.code)
        for i in reversed(range(len(self.ups))):
            y = self.ups[i](y, encoded.sizes[i])
            if str(i) in self.skip_scores:
                y = y + self.skip_scores[str(i)](encoded.skips[i])
        return y


class _PassThrough(nn.Module):
    def forward(self, features: Tensor, x: Tensor) -> Tensor:
        return features


@register_model("fcn", options=EncoderOptions)
def fcn(upsample: str = "bilinear", skips: int = 0, **options: Any) -> PixelwiseNet:
    """FCN baseline: 1x1 class scores on the code, upsampled to the input (skips=0: FCN-32s style; 2: FCN-8s style)."""
    shared = EncoderOptions(**options)
    if upsample == "max":
        raise ConfigError(
            "the FCN upsamples class scores, which have no max-pool switches; use bilinear, nearest, "
            "bicubic, fixed, average or transposed"
        )
    net, info, in_channels = pixelwise_encoder(shared, upsample, keep_skips=True)
    if not 0 <= skips <= len(info.skip_channels):
        raise ConfigError(f"skips must lie between 0 and {len(info.skip_channels)} (the encoder's downsamplings), got {skips}")
    task, scale = shared.task, shared.scale
    scores = shared.classes if task == "segment" else in_channels * scale * scale
    decoder = FCNDecoder(info, scores, upsample, skips)
    model = PixelwiseNet(net, decoder, scores, shared, in_channels, {"upsample": upsample, "skips": skips})
    if task == "segment":
        model.head = _PassThrough()  # the decoder's upsampled scores are the logits
    else:
        model.head = SuperResolutionHead(scores, in_channels, scale, project=False)
        for layer in model.decoder.modules():  # start exactly at bicubic, as the other models' heads do
            if isinstance(layer, nn.Conv2d):
                nn.init.zeros_(layer.weight)
                assert layer.bias is not None  # the decoder's convolutions all have a bias
                nn.init.zeros_(layer.bias)
    return model


__all__ = ["FCNDecoder", "fcn"]
