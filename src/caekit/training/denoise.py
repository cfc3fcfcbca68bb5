"""``denoise``: the denoising autoencoder's objective (corrupt the input on the fly, reconstruct the clean image)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from caekit.data.noise import Corruption, seeded
from caekit.errors import ConfigError
from caekit.metrics import psnr, ssim
from caekit.training.objectives import Painter, Reconstruct, reconstruction_loss, register_objective


@register_objective("denoise")
class Denoise(Reconstruct):
    """Denoising autoencoder: corrupt the input on the fly (gaussian sigma, salt_pepper amount, mask fraction),
    reconstruct the clean image. ``level`` is one value, or a range [low, high] from which each image draws its own
    level (a blind denoiser for several noise levels). Validation corrupts with a fixed seed, so epochs compare."""

    def __init__(self, loss: str = "mse", noise: str = "gaussian", level: float | list[float] = 0.3, seed: int = 1234) -> None:
        super().__init__(loss)
        levels = [float(v) for v in level] if isinstance(level, (list, tuple)) else [float(level)]
        if len(levels) not in (1, 2) or levels[0] > levels[-1]:
            raise ConfigError(f"denoise level is a number or a range [low, high], got {level}")
        self.corruptions = [Corruption(noise, v) for v in levels]  # validates both ends
        self.corruption = self.corruptions[-1]
        self.levels = levels
        self.seed = seed
        self._generator: torch.Generator | None = None

    def inputs(self, batch: dict[str, Tensor]) -> Tensor:
        x = batch["image"]
        if len(self.levels) == 1:
            return self.corruption(x, self._generator)
        low, high = self.levels
        device = x.device if self._generator is None else self._generator.device
        level = torch.rand((len(x), 1, 1, 1), generator=self._generator, device=device).to(x.device, x.dtype) * (high - low) + low
        return self.corruption.apply(x, level, self._generator)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        # seeded by the batch content: the same images get the same noise every epoch, different images different noise
        self._generator = seeded(self.seed + int(batch["image"].double().sum().item() * 1000) % 2**31, batch["image"].device)
        try:
            noisy = self.inputs(batch)
        finally:
            self._generator = None
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
