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
from caekit.evaluate.metrics import psnr, ssim

Filter = Callable[[np.ndarray, float], np.ndarray]


def _per_channel(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(channel) for channel in image])


FILTERS: dict[str, tuple[Filter, list[float]]] = {
    "gaussian blur": (lambda img, s: _per_channel(img, lambda c: gaussian_blur(c, sigma=s)), [0.5, 0.75, 1.0, 1.5, 2.0]),
    "median": (lambda img, r: _per_channel(img, lambda c: median(c, disk(int(r)))), [1, 2]),
    "non-local means": (lambda img, h: _per_channel(img, lambda c: denoise_nl_means(c, h=h, patch_size=3, patch_distance=5, fast_mode=True)),
                        [0.05, 0.1, 0.2, 0.3, 0.45]),
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


@torch.no_grad()
def denoise(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """A denoising model's output in [0, 1] for float [0, 1] images."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(chunk.to(device).float()).float().clamp(0, 1).cpu() for chunk in images.split(batch_size)])


def compare(clean: Tensor, corruption: Corruption, model: nn.Module | None = None, filters: list[str] | None = None,
            tune_images: int = 32, seed: int = 0) -> tuple[list[dict[str, object]], dict[str, Tensor]]:
    """Rows (method, parameter, PSNR, SSIM mean over images) and the output images of each method."""
    noisy = corruption(clean, seeded(seed))
    outputs: dict[str, Tensor] = {"noisy": noisy}
    params: dict[str, object] = {"noisy": "-"}
    if model is not None:
        outputs["denoising CAE"] = denoise(model, noisy)
        params["denoising CAE"] = "-"
    for name in filters if filters is not None else list(FILTERS):
        p = tune_filter(name, noisy[:tune_images], clean[:tune_images])
        outputs[name] = apply_filter(name, noisy, p)
        params[name] = p
    rows = [{"noise": str(corruption), "method": name, "parameter": params[name],
             "PSNR (dB)": round(psnr(out, clean).mean().item(), 2), "SSIM": round(ssim(out, clean).mean().item(), 4)}
            for name, out in outputs.items()]
    return rows, outputs


def markdown_table(rows: list[dict[str, object]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def comparison_picture(clean: Tensor, outputs: dict[str, Tensor], path: str | Path, count: int = 8, title: str | None = None) -> Path:
    from caekit import viz

    rows = [(name, images[:count]) for name, images in outputs.items()] + [("clean", clean[:count])]
    return viz.image_rows(rows, path, title)


def save_png(image: Tensor, path: Path) -> Path:
    """One float [C, H, W] image in [0, 1] as an 8-bit PNG."""
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).squeeze(-1).numpy()
    Image.fromarray(array).save(path)
    return path


def denoise_files(model: nn.Module, images: Tensor, stems: list[str], folder: Path, add_noise: str | None = None,
                  level: float = 0.3, seed: int = 0) -> tuple[list[Path], Path]:
    """Denoise uint8 images [N, C, H, W] into ``folder``/<stem>.png (with ``add_noise``, corrupt them first and keep
    <stem>_noisy.png); returns the written files and a comparison picture."""
    from caekit import viz

    folder.mkdir(parents=True, exist_ok=True)
    inputs = images.float() / 255
    rows = []
    if add_noise:
        clean = inputs
        inputs = Corruption(add_noise, level)(clean, seeded(seed))
        rows.append((f"noisy ({add_noise} {level:g})", inputs))
        for stem, image in zip(stems, inputs):
            save_png(image, folder / f"{stem}_noisy.png")
    else:
        rows.append(("input", inputs))
    outputs = denoise(model, inputs)
    rows.append(("denoised", outputs))
    if add_noise:
        rows.append(("clean", clean))
    written = [save_png(image, folder / f"{stem}.png") for stem, image in zip(stems, outputs)]
    return written, viz.image_rows([(label, rows_images[:16]) for label, rows_images in rows], folder / "comparison.png")
