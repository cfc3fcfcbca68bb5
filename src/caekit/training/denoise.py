"""``denoise``: the denoising autoencoder's objective (corrupt the input on the fly, reconstruct the clean image)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from caekit.data.noise import OnTheFly, seeded
from caekit.metrics import psnr, ssim
from caekit.training.objectives import Painter, Reconstruct, reconstruction_loss, register_objective


@register_objective("denoise")
class Denoise(Reconstruct):
    """Denoising autoencoder: corrupt the input on the fly (gaussian sigma, salt_pepper amount, mask fraction),
    reconstruct the clean image. ``level`` is one value, or a range [low, high] from which each image draws its own
    level (a blind denoiser for several noise levels). Validation corrupts with a fixed seed, so epochs compare."""

    def __init__(self, loss: str = "mse", noise: str = "gaussian", level: float | list[float] = 0.3, seed: int = 1234) -> None:
        super().__init__(loss)
        self.noise = OnTheFly(noise, level, seed)
        self.corruption, self.seed = self.noise.corruption, seed

    def inputs(self, batch: dict[str, Tensor]) -> Tensor:
        return self.noise(batch["image"])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        noisy = self.noise.fixed(batch["image"])
        target = batch["image"]
        output = model(noisy).float()
        per_image = reconstruction_loss(self.loss_name, output, target, "none").flatten(1).mean(1)
        return {
            "loss": per_image,
            "mse": (output - target).pow(2).flatten(1).mean(1),
            "psnr": psnr(output, target),
            "ssim": ssim(output, target),
            "noisy_psnr": psnr(noisy, target),
        }

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path, draw: Painter) -> list[Path]:
        noisy = self.corruption(images, seeded(self.seed, images.device))
        rows = [(f"noisy\n({self.corruption})", noisy), ("denoised", model(noisy)), ("clean", images)]
        return [draw.image_rows(rows, folder / "denoising.png")]
