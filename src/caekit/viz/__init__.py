"""Pictures people look at: reconstructions, loss curves, first-layer filters and feature maps.

Area-specific pictures live in modules beside this one (``caekit.viz.<area>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **options: Any) -> tuple[Figure, Any]:
    """A figure and its axes (``Figure.subplots``), made without pyplot: drawing a picture chooses no matplotlib
    backend and leaves no figure open, so a notebook or application importing caekit keeps its own settings."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **options)


def _show(ax: Axes, image: Tensor | np.ndarray, cmap: str = "gray") -> None:
    """Draw one [C, H, W] (or [H, W]) image in [0, 1] without axes."""
    arr = image.detach().float().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    ax.imshow(np.clip(arr, 0, 1), cmap=cmap if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _scale_bar(fig: Figure, axes: np.ndarray, cmap: str, label: str) -> None:
    """One colour bar for a grid of images that are each scaled to their own range: 0 is an image's minimum."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=cmap), ax=axes.ravel().tolist(), fraction=0.025, pad=0.02)
    bar.set_ticks([0, 0.5, 1], labels=["min", "", "max"])
    bar.ax.tick_params(labelsize=6)
    bar.set_label(label, fontsize=7)


def integer_epochs(ax: Axes) -> None:
    """Whole-number ticks on an epoch axis (matplotlib would put ticks at 1.5, 2.5 for a short run)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def image_rows(
    rows: list[tuple[str, Tensor]], path: str | Path, title: str | None = None, captions: list[str] | None = None
) -> Path:
    """Rows of images with a label each, e.g. originals above reconstructions (or noisy / denoised / clean);
    ``captions`` go under the last row's images (e.g. each reconstruction's PSNR)."""
    columns = max(len(images) for _, images in rows)
    fig, axes = subplots(len(rows), columns, figsize=(1.2 * columns, 1.3 * len(rows) + (0.2 if captions else 0)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            if c < len(images):
                _show(ax, images[c])
                if captions and r == len(rows) - 1 and c < len(captions):
                    ax.set_xlabel(captions[c], fontsize=7)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def reconstructions(originals: Tensor, outputs: Tensor, path: str | Path, title: str | None = None) -> Path:
    """A row of originals above the row of their reconstructions, each with its PSNR (dB) under it."""
    from caekit.metrics import psnr

    same = originals.shape == outputs.shape
    captions = (
        [f"{v:.1f} dB" for v in psnr(outputs.detach().float().cpu(), originals.detach().float().cpu()).tolist()] if same else None
    )
    return image_rows([("original", originals), ("reconstruction", outputs)], path, title, captions)


def curves(history: list[dict[str, float]], path: str | Path, title: str | None = None) -> Path:
    """Loss per epoch (train and validation); PSNR on a second axis when it was measured."""
    epochs = [row["epoch"] for row in history]
    fig, ax = subplots(figsize=(6, 3.6))
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        if any(key in row for row in history):
            ax.plot(epochs, [row.get(key, np.nan) for row in history], style, label=key.replace("_", " "), markersize=3)
    integer_epochs(ax)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if any("val_psnr" in row for row in history):
        twin = ax.twinx()
        twin.plot(
            epochs, [row.get("val_psnr", np.nan) for row in history], "-^", color="tab:green", label="val PSNR (dB)", markersize=3
        )
        twin.set_ylabel("PSNR (dB)")
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="upper center", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def filters(weight: Tensor, path: str | Path, title: str = "first-layer filters") -> Path:
    """A grid of conv filters [out, in, k, k], numbered: colour when in == 3, else the mean over input channels; each
    filter scaled to its own range (so the grid shows shapes, not magnitudes, as the title says)."""
    w = weight.detach().float().cpu()
    w = w if w.shape[1] == 3 else w.mean(1, keepdim=True)
    lo = w.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = w.flatten(1).max(1).values.view(-1, 1, 1, 1)
    w = (w - lo) / (hi - lo).clamp_min(1e-8)
    columns = min(16, len(w))
    rows = -(-len(w) // columns)
    fig, axes = subplots(rows, columns, figsize=(0.6 * columns, 0.6 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(w):
            _show(ax, w[i])
            ax.set_title(str(i), fontsize=6, pad=1)
        else:
            ax.axis("off")
    if w.shape[1] == 1:
        _scale_bar(fig, axes, "gray", "each filter's own range")
    k = weight.shape[-1]
    fig.suptitle(
        f"{title}: {len(w)} of {k}x{k}, each scaled to its own min..max"
        + ("" if weight.shape[1] in (1, 3) else f" (mean of {weight.shape[1]} input channels)"),
        fontsize=9,
    )
    return _save(fig, path)


def feature_maps(image: Tensor, maps: list[tuple[str, Tensor]], path: str | Path, per_stage: int = 8) -> Path:
    """The input, then up to ``per_stage`` channels of each encoder stage's output for that one image."""
    fig, axes = subplots(len(maps) + 1, per_stage, figsize=(1.1 * per_stage, 1.15 * (len(maps) + 1)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    _show(axes[0, 0], image)
    axes[0, 0].axis("on")
    axes[0, 0].set_ylabel("input", rotation=0, ha="right", va="center", fontsize=9)
    for r, (name, fmap) in enumerate(maps, start=1):
        fmap = fmap.detach().float().cpu()
        shown = min(per_stage, fmap.shape[0])
        for c in range(shown):
            channel = fmap[c]
            span = (channel.max() - channel.min()).clamp_min(1e-8)
            ax = axes[r, c]
            ax.axis("on")
            _show(ax, (channel - channel.min()) / span, cmap="viridis")
            ax.set_title(f"ch {c}  {channel.min():.2g}..{channel.max():.2g}", fontsize=5, pad=1)
        axes[r, 0].set_ylabel(
            f"{name}\n{'x'.join(map(str, fmap.shape))}\nchannels 0-{shown - 1} of {fmap.shape[0]}",
            rotation=0,
            ha="right",
            va="center",
            fontsize=7,
        )
    _scale_bar(fig, axes[1:], "viridis", "each channel's own range")
    fig.suptitle("feature maps, each channel scaled to its own min..max (shown above it)", fontsize=8)
    return _save(fig, path)
