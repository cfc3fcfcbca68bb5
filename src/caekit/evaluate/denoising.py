"""Denoising comparison: PSNR/SSIM of noisy, CAE-denoised and classically filtered images against the clean ones.

Classical filters come from scikit-image: Gaussian blur, median, non-local means and total-variation (Chambolle).
Their one parameter is chosen per noise level as the best of a small grid on a few of the images (an oracle
choice that favours the classical filters, so the CAE is compared with them at their best).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage.filters import gaussian as gaussian_blur
from skimage.filters import median
from skimage.morphology import disk
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle
from torch import Tensor, nn

from caekit.data.noise import Corruption, seeded
from caekit.inference import reconstruct
from caekit.metrics import psnr, ssim

Filter = Callable[[np.ndarray, float], np.ndarray]


def _per_channel(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(channel) for channel in image])


FILTERS: dict[str, tuple[Filter, list[float]]] = {
    "gaussian blur": (lambda img, s: _per_channel(img, lambda c: gaussian_blur(c, sigma=s)), [0.5, 0.75, 1.0, 1.5, 2.0]),
    "median": (lambda img, r: _per_channel(img, lambda c: median(c, disk(int(r)))), [1, 2]),
    "non-local means": (
        lambda img, h: _per_channel(img, lambda c: denoise_nl_means(c, h=h, patch_size=3, patch_distance=5, fast_mode=True)),
        [0.05, 0.1, 0.2, 0.3, 0.45],
    ),
    "TV (Chambolle)": (lambda img, w: _per_channel(img, lambda c: denoise_tv_chambolle(c, weight=w)), [0.05, 0.1, 0.2, 0.3, 0.5]),
}


def apply_filter(name: str, images: Tensor, parameter: float) -> Tensor:
    """One classical filter over float [0, 1] images [N, C, H, W]."""
    fn, _ = FILTERS[name]
    arrays = [np.clip(fn(img.numpy().astype(np.float64), parameter), 0, 1) for img in images.float().cpu()]
    return torch.from_numpy(np.stack(arrays)).float()


def tune_filter(name: str, noisy: Tensor, clean: Tensor) -> float:
    """The filter parameter from its grid with the best mean PSNR on these images."""
    _, grid = FILTERS[name]
    scores = [psnr(apply_filter(name, noisy, p), clean).mean().item() for p in grid]
    return grid[int(np.argmax(scores))]


def compare(
    clean: Tensor,
    corruption: Corruption,
    model: nn.Module | None = None,
    filters: list[str] | None = None,
    tune_images: int = 32,
    seed: int = 0,
) -> tuple[list[dict[str, object]], dict[str, Tensor]]:
    """Rows (method, parameter, PSNR, SSIM mean over images) and the output images of each method."""
    noisy = corruption(clean, seeded(seed))
    outputs: dict[str, Tensor] = {"noisy": noisy}
    params: dict[str, object] = {"noisy": "-"}
    if model is not None:
        outputs["denoising CAE"] = reconstruct(model, noisy)
        params["denoising CAE"] = "-"
    for name in filters if filters is not None else list(FILTERS):
        p = tune_filter(name, noisy[:tune_images], clean[:tune_images])
        outputs[name] = apply_filter(name, noisy, p)
        params[name] = p
    rows = [
        {
            "noise": str(corruption),
            "method": name,
            "parameter": params[name],
            "PSNR (dB)": round(psnr(out, clean).mean().item(), 2),
            "SSIM": round(ssim(out, clean).mean().item(), 4),
        }
        for name, out in outputs.items()
    ]
    return rows, outputs


def markdown_table(rows: list[dict[str, object]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def comparison_picture(
    clean: Tensor, outputs: dict[str, Tensor], path: str | Path, count: int = 8, title: str | None = None
) -> Path:
    from caekit import viz

    rows = [(name, images[:count]) for name, images in outputs.items()] + [("clean", clean[:count])]
    return viz.image_rows(rows, path, title)
