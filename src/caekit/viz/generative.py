"""Pictures of generative models: sample grids, latent interpolation, the 2-D manifold, samples per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from scipy.stats import norm
from torch import Tensor, nn
from torchvision.utils import make_grid

from caekit.viz import _save, integer_epochs, subplots

if TYPE_CHECKING:
    from caekit.models.vae import ConvVAE


def _grid_figure(grid: Tensor, path: str | Path, title: str | None, scale: float = 0.35) -> Path:
    arr = grid.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    h, w = arr.shape[:2]
    fig, ax = subplots(figsize=(max(2.0, w * scale / 10), max(2.0, h * scale / 10) + (0.3 if title else 0)))
    ax.imshow(arr if arr.shape[2] == 3 else arr[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def sample_grid(images: Tensor, path: str | Path, title: str | None = None, columns: int = 8) -> Path:
    """Images in [0, 1] [N, C, H, W] tiled ``columns`` wide."""
    return _grid_figure(make_grid(images.float().cpu(), nrow=columns, padding=2, pad_value=0.5), path, title)


@torch.no_grad()
def interpolation(model: nn.Module, first: Tensor, second: Tensor, path: str | Path, steps: int = 10) -> Path:
    """Decode the straight line between two images' posterior means; the end images are shown beside it."""
    model = cast("ConvVAE", model)
    a, b = model.encode(first), model.encode(second)
    t = torch.linspace(0, 1, steps, device=a.device)[:, None]
    decoded = model.decode((1 - t) * a + t * b)
    row = torch.cat([first.float(), decoded.float(), second.float()])
    return _grid_figure(
        make_grid(row.cpu(), nrow=len(row), padding=2, pad_value=0.5),
        path,
        "latent interpolation (ends: the two inputs)",
        scale=0.5,
    )


@torch.no_grad()
def manifold(model: nn.Module, path: str | Path, n: int = 15) -> Path:
    """A 2-D latent's decoded images on a regular grid of prior quantiles (Kingma & Welling, fig. 4)."""
    if getattr(model, "latent_dim", None) != 2:
        raise ValueError("the manifold picture needs a 2-D latent space")
    model = cast("ConvVAE", model)
    q = torch.tensor(norm.ppf(np.linspace(0.05, 0.95, n)), dtype=torch.float32)
    zy, zx = torch.meshgrid(q.flip(0), q, indexing="ij")
    z = torch.stack([zx.flatten(), zy.flatten()], 1).to(next(model.parameters()).device)
    images = model.decode(z).float().cpu()
    return _grid_figure(
        make_grid(images, nrow=n, padding=1, pad_value=0.5), path, "2-D latent manifold (prior quantiles 5%..95%)"
    )


def epoch_rows(samples: list[Tensor], path: str | Path, max_rows: int = 12) -> Path:
    """One row per epoch of the same fixed-noise samples (evenly chosen epochs when there are many)."""
    picks = np.unique(np.linspace(0, len(samples) - 1, min(max_rows, len(samples))).round().astype(int))
    rows = torch.cat([samples[i].float() for i in picks])
    fig_path = _grid_figure(
        make_grid(rows, nrow=len(samples[0]), padding=2, pad_value=0.5),
        path,
        f"fixed-noise samples, epochs {', '.join(str(i + 1) for i in picks)} (top to bottom)",
    )
    return fig_path


def coverage_bars(counts: np.ndarray, confidence: np.ndarray, classes: list[str], path: str | Path, title: str) -> Path:
    """How many samples a classifier assigns to each class, with the mean confidence per class."""
    fig, ax = subplots(figsize=(6, 3))
    ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.set_xticks(range(len(counts)), classes)
    ax.set_ylabel("samples")
    twin = ax.twinx()
    twin.plot(range(len(counts)), confidence, "o-", color="tab:orange")
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("mean confidence")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def gan_curves(history: list[dict[str, float]], path: str | Path, title: str | None = None) -> Path:
    """Discriminator and generator losses per epoch, with D's mean outputs on real and generated images."""
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("train_d_loss", "D loss"), ("train_g_loss", "G loss")):
        left.plot(epochs, [row.get(key, np.nan) for row in history], "-o", markersize=3, label=label)
    integer_epochs(left)
    left.set_ylabel("BCE")
    left.legend(fontsize=8)
    for key, label in (
        ("train_d_real", "D(real)"),
        ("train_d_fake", "D(G(z))"),
        ("val_d_real", "D(real), val"),
        ("val_d_fake", "D(G(z)), val"),
    ):
        if any(key in row for row in history):
            right.plot(
                epochs,
                [row.get(key, np.nan) for row in history],
                "-s" if key.startswith("val") else "-o",
                markersize=3,
                label=label,
            )
    right.set_ylim(0, 1)
    integer_epochs(right)
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
