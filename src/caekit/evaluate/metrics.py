"""Image-quality metrics on tensors in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(output: Tensor, target: Tensor, peak: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB, one value per image: 10 log10(peak^2 / MSE)."""
    mse = (output.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak**2 / mse.clamp_min(1e-12))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(output: Tensor, target: Tensor, peak: float = 1.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity (Wang et al. 2004, Gaussian 11x11 window, sigma 1.5), one value per image.

    Channels are scored separately and averaged; images smaller than the window use a window of their size.
    """
    output, target = output.float(), target.float()
    channels = output.shape[1]
    size = min(window, *output.shape[-2:])
    kernel = _gaussian_window(size, sigma).to(output.device).expand(channels, 1, size, size)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, groups=channels)

    mu_x, mu_y = blur(output), blur(target)
    var_x = blur(output * output) - mu_x**2
    var_y = blur(target * target) - mu_y**2
    cov = blur(output * target) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return score.flatten(1).mean(1)
