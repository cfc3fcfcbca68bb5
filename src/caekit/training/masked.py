"""``masked``: masked convolutional autoencoding (MAE, SimMIM, SparK and ConvNeXt V2's FCMAE, for conv encoders).

Each training image hides ``ratio`` of its ``patch`` x ``patch`` patches (exactly ``round(ratio * patches)``, chosen
at random per image); the model reconstructs the whole image and the loss counts the hidden pixels only. Hidden
pixels enter as zeros (the mask token of a network without tokens).

A convolution sees across patch borders, so an encoder could spend its capacity on the sharp edges of the mask
pattern instead of on the image. With ``remask`` (SparK's approximation of sparse convolution) the output of every
convolution and pooling layer of the model's encoder is multiplied by the visible mask at that layer's resolution, so
hidden positions stay empty all the way down and the mask's edges never become features. Measured on MNIST with the
reference CAE (BENCHMARKS.md), re-masking gave no better features than zero-filled patches alone (fine-tuned at 10,
30 and 100 labels per class, 5 seeds, within about one standard error) and costs a mask resize and a multiply per
layer, so it is off by default.
``norm_targets`` (MAE's per-patch normalised pixels) compares each hidden patch after removing its mean and
scale, from the output and from the image alike, since a sigmoid output cannot reach normalised values.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from caekit.data.noise import seeded
from caekit.errors import ConfigError
from caekit.metrics import psnr
from caekit.training.objectives import Painter, Reconstruct, reconstruction_loss, register_objective, unwrap


def patch_mask(
    shape: tuple[int, ...], patch: int, ratio: float, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """A [N, 1, H, W] float mask, 1 where hidden: in every image exactly ``round(ratio * patches)`` of its
    ``patch`` x ``patch`` patches (the last row and column of patches may be cut by the image border)."""
    n, _, height, width = shape
    rows, cols = math.ceil(height / patch), math.ceil(width / patch)
    hidden = round(ratio * rows * cols)
    gen_device = generator.device if generator is not None else device
    order = torch.rand(n, rows * cols, generator=generator, device=gen_device).argsort(dim=1).to(device)
    grid = torch.zeros(n, rows * cols, device=device)
    grid.scatter_(1, order[:, :hidden], 1.0)
    grid = grid.view(n, 1, rows, cols).repeat_interleave(patch, 2).repeat_interleave(patch, 3)
    return grid[:, :, :height, :width].contiguous()


def _patches(x: Tensor, patch: int) -> Tensor:
    """[N, C, H, W] -> [N, patches, C * patch * patch], the image zero-padded up to whole patches."""
    height, width = x.shape[-2:]
    x = F.pad(x, (0, (-width) % patch, 0, (-height) % patch))
    return F.unfold(x, patch, stride=patch).transpose(1, 2)


def _normalised(x: Tensor, patch: int) -> Tensor:
    """Each patch less its mean, over its standard deviation (MAE's targets), as [N, patches, values]."""
    values = _patches(x, patch)
    return (values - values.mean(-1, keepdim=True)) / (values.var(-1, keepdim=True, unbiased=False) + 1e-6).sqrt()


@contextlib.contextmanager
def remasked(model: nn.Module, visible: Tensor) -> Iterator[None]:
    """While active, every convolution and pooling layer of ``model.encoder`` (or of the model when it has none)
    zeroes the positions that ``visible`` (a [N, 1, H, W] mask, 1 where seen) hides at its output's resolution."""
    encoder = getattr(unwrap(model), "encoder", None) or unwrap(model)

    def hook(_module: nn.Module, _inputs: object, output: Tensor | tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        features = output[0] if isinstance(output, tuple) else output
        keep = F.interpolate(visible, size=features.shape[-2:], mode="nearest").to(features.dtype)
        return (features * keep, *output[1:]) if isinstance(output, tuple) else features * keep

    layers = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
    handles = [m.register_forward_hook(hook) for m in encoder.modules() if isinstance(m, layers)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@register_objective("masked")
class MaskedReconstruct(Reconstruct):
    """Masked autoencoding: hide ``ratio`` of the ``patch`` x ``patch`` patches, reconstruct, loss on the hidden ones."""

    def __init__(
        self,
        ratio: float = 0.6,
        patch: int = 4,
        loss: str = "mse",
        norm_targets: bool = False,
        remask: bool = False,
        seed: int = 1234,
    ) -> None:
        super().__init__(loss)
        if not 0 < ratio < 1:
            raise ConfigError(f"masked: ratio is the share of hidden patches, between 0 and 1 (not included), got {ratio}")
        if patch < 1:
            raise ConfigError(f"masked: patch is a size in pixels, at least 1, got {patch}")
        if norm_targets and loss != "mse":
            raise ConfigError("masked: norm_targets compares normalised patches by mse; set loss: mse")
        self.ratio, self.patch, self.norm_targets, self.remask, self.seed = ratio, patch, norm_targets, remask, seed

    def forward(self, model: nn.Module, x: Tensor, mask: Tensor) -> Tensor:
        """The model's reconstruction of ``x`` with the ``mask`` (1 = hidden) patches hidden."""
        visible = 1.0 - mask
        if not self.remask:
            return model(x * visible)
        with remasked(model, visible):
            return model(x * visible)

    def masked_loss(self, output: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Per image, the loss over its hidden pixels (or hidden patches, with ``norm_targets``) only."""
        if self.norm_targets:
            hidden = _patches(mask, self.patch).amax(-1)  # [N, patches], 1 for hidden patches
            error = (_normalised(output.float(), self.patch) - _normalised(target.float(), self.patch)).pow(2).mean(-1)
            return (error * hidden).sum(1) / hidden.sum(1).clamp_min(1)
        per_pixel = reconstruction_loss(self.loss_name, output, target, "none") * mask
        return per_pixel.flatten(1).sum(1) / (mask.flatten(1).sum(1) * target.shape[1]).clamp_min(1)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        x = batch["image"]
        mask = patch_mask(tuple(x.shape), self.patch, self.ratio, device=x.device)
        return self.masked_loss(self.forward(model, x, mask), x, mask).mean(), {}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        # the same images get the same mask every epoch, so epochs compare
        x = batch["image"]
        generator = seeded(self.seed + int(x.double().sum().item() * 1000) % 2**31, x.device)
        mask = patch_mask(tuple(x.shape), self.patch, self.ratio, generator, x.device)
        output = self.forward(model, x, mask).float()
        full = model(x).float()  # the unmasked reconstruction, what the features are used on afterwards
        return {"loss": self.masked_loss(output, x, mask), "psnr": psnr(full, x), "masked_psnr": psnr(output, x)}

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path, draw: Painter) -> list[Path]:
        mask = patch_mask(tuple(images.shape), self.patch, self.ratio, seeded(self.seed, images.device), images.device)
        output = self.forward(model, images, mask)
        rows = [
            (f"masked input\n({self.ratio:.0%} of {self.patch}x{self.patch})", images * (1 - mask)),
            ("reconstruction", output),
            ("original", images),
        ]
        return [draw.image_rows(rows, folder / "masked.png")]


__all__ = ["MaskedReconstruct", "patch_mask", "remasked"]
