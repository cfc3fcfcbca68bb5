"""Pixel-wise pictures: segmentation overlays (image / ground truth / prediction), per-class IoU bars, SR rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.patches import Patch
from torch import Tensor

from caekit.viz import _save, _show, image_rows, subplots

IGNORE_COLOUR = (1.0, 1.0, 1.0)


def palette(classes: int) -> np.ndarray:
    """[classes, 3] colours in [0, 1]: black for class 0 (background), tab10/tab20 colours for the others."""
    cmap = colormaps["tab10" if classes <= 11 else "tab20"]
    colours = [(0.0, 0.0, 0.0)] + [cmap(i % cmap.N)[:3] for i in range(classes - 1)]
    return np.array(colours, dtype=np.float32)


def colour_mask(mask: Tensor | np.ndarray, classes: int, ignore_index: int = 255) -> np.ndarray:
    """A label map [H, W] as an RGB float image [H, W, 3] (ignored pixels white)."""
    m = mask.cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    m = m.astype(np.int64)
    out = palette(classes)[np.clip(m, 0, classes - 1)]
    out[m == ignore_index] = IGNORE_COLOUR
    return out


def overlay(image: Tensor, mask: Tensor, classes: int, alpha: float = 0.6, ignore_index: int = 255) -> np.ndarray:
    """The grey-scaled image with the non-background classes painted over it ([H, W, 3] in [0, 1])."""
    img = image.detach().float().cpu()
    grey = img.mean(0).numpy()[..., None].repeat(3, axis=-1)
    colours = colour_mask(mask, classes, ignore_index)
    m = mask.cpu().numpy()[..., None]
    painted = (m != 0) & (m != ignore_index)
    return np.where(painted, (1 - alpha) * grey + alpha * colours, grey).clip(0, 1)


def segmentation_overlays(
    images: Tensor,
    predictions: Tensor,
    path: str | Path,
    classes: list[str],
    truth: Tensor | None = None,
    title: str | None = None,
    columns: int = 8,
) -> Path:
    """Columns of images: the image, the ground truth over it (when given) and the prediction over it."""
    n = min(columns, len(images))
    rows = [("image", None)] + ([("truth", truth)] if truth is not None else []) + [("prediction", predictions)]
    fig, axes = subplots(len(rows), n, figsize=(1.25 * n, 1.3 * len(rows) + 0.5), squeeze=False)
    for r, (label, masks) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            if masks is None:
                _show(ax, images[c])
            else:
                _show(ax, torch.from_numpy(overlay(images[c], masks[c], len(classes))).permute(2, 0, 1))
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    colours = palette(len(classes))
    fig.legend(
        handles=[Patch(color=colours[i], label=name) for i, name in enumerate(classes) if i > 0],
        loc="lower center",
        ncol=min(10, len(classes) - 1),
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def iou_bars(iou: dict[str, float] | list[tuple[str, dict[str, float]]], path: str | Path, title: str = "per-class IoU") -> Path:
    """Bars of IoU per class; several models' (name, {class: IoU}) side by side."""
    series = [("", iou)] if isinstance(iou, dict) else list(iou)
    names = list(series[0][1])
    x = np.arange(len(names))
    width = 0.8 / len(series)
    fig, ax = subplots(figsize=(max(5.0, 0.45 * len(names) * max(1, len(series) / 2)), 3.2))
    for i, (label, values) in enumerate(series):
        heights = [values.get(name, np.nan) for name in names]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=label or None)
    ax.set_xticks(x, names, rotation=45 if max(map(len, names)) > 3 else 0, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=7, ncol=min(4, len(series)))
    means = ", ".join(f"{label or 'mean'} {np.nanmean(list(v.values())):.3f}" for label, v in series)
    ax.set_title(f"{title} (mean IoU: {means})", fontsize=9)
    return _save(fig, path)


def superres_rows(
    low: Tensor,
    bicubic: Tensor,
    outputs: Tensor,
    originals: Tensor | None,
    path: str | Path,
    title: str | None = None,
    columns: int = 8,
) -> Path:
    """Rows: the low-resolution input (nearest, to show its pixels), bicubic, the model, the original."""
    size = bicubic.shape[-2:]
    blocky = torch.nn.functional.interpolate(low[:columns].float(), size=size, mode="nearest")
    rows = [("input", blocky), ("bicubic", bicubic[:columns]), ("model", outputs[:columns].clamp(0, 1))]
    if originals is not None:
        rows.append(("original", originals[:columns]))
    return image_rows(rows, path, title)


__all__ = ["colour_mask", "iou_bars", "overlay", "palette", "segmentation_overlays", "superres_rows"]
