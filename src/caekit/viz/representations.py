"""Pictures of representations: 2-D maps of codes, confusion matrices and comparison bar charts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps

from caekit.data.imageset import to_unit
from caekit.viz import _save, subplots


def _palette(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"]
    return [cmap(i if n <= 20 else i / max(1, n - 1)) for i in range(n)]


def scatter(
    xy: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    title: str | None = None,
    images: torch.Tensor | None = None,
    thumbnails: int = 0,
    seed: int = 0,
    legend_max: int = 20,
) -> Path:
    """Points coloured by label with a legend (up to ``legend_max`` classes); ``thumbnails`` images drawn at their points."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    labels = np.asarray(labels)
    present = np.unique(labels)
    colours = _palette(len(classes))
    fig, ax = subplots(figsize=(6.4, 5.6))
    size = max(2.0, 12.0 - len(xy) / 800)
    for label in present:
        mask = labels == label
        ax.scatter(xy[mask, 0], xy[mask, 1], s=size, color=colours[label], label=classes[label], alpha=0.7, linewidths=0)
    if images is not None and thumbnails > 0:
        rng = np.random.default_rng(seed)
        for i in rng.choice(len(xy), min(thumbnails, len(xy)), replace=False):
            img = to_unit(images[i])
            arr = img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()
            box = OffsetImage(arr, zoom=0.6, cmap="gray" if arr.ndim == 2 else None)
            ax.add_artist(
                AnnotationBbox(box, xy[i], frameon=True, pad=0.05, bboxprops={"edgecolor": colours[labels[i]], "linewidth": 1.2})
            )
    if len(present) <= legend_max:
        ax.legend(
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            fontsize=7,
            markerscale=2.5,
            frameon=False,
            title="class",
            title_fontsize=8,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def confusion_picture(
    confusion: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    title: str | None = None,
    normalise: bool = True,
    max_labels: int = 40,
) -> Path:
    """A confusion matrix (rows: true class, columns: predicted), row-normalised so small classes stay visible."""
    cm = np.asarray(confusion, dtype=np.float64)
    if normalise:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(classes)
    side = min(10.0, 2.5 + 0.32 * n)
    fig, ax = subplots(figsize=(side + 1, side))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class" if normalise else "images")
    if n <= max_labels:
        ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
        if n <= 12:
            light = 0.6 if normalise else 0.6 * cm.max()
            for (t, p), v in np.ndenumerate(cm):
                ax.text(
                    p,
                    t,
                    f"{v:.2f}" if normalise else f"{int(v)}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if v > light else "black",
                )
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def comparison_bars(
    rows: Sequence[dict], path: str | Path, metrics: Sequence[str] = ("accuracy", "f1"), title: str | None = None
) -> Path:
    """Grouped bars: one group per model, one bar per metric, error bars = spread over seeds.

    ``rows``: dicts with ``model``, ``<metric>_mean`` and ``<metric>_std``.
    """
    models = [r["model"] for r in rows]
    x = np.arange(len(models))
    width = 0.8 / len(metrics)
    fig, ax = subplots(figsize=(max(5.0, 0.9 * len(models) + 2), 3.8))
    for j, metric in enumerate(metrics):
        means = [r.get(f"{metric}_mean", np.nan) for r in rows]
        stds = [r.get(f"{metric}_std", 0.0) for r in rows]
        ax.bar(x + (j - (len(metrics) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=metric)
    ax.set_xticks(x, models, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def budget_curves(
    rows: Sequence[dict], path: str | Path, unit: str, metrics: Sequence[str] = ("accuracy", "f1"), title: str | None = None
) -> Path:
    """One panel per metric: a line per model against the label budget (log scale), shaded mean ± std over seeds.

    ``rows``: dicts with ``model``, ``budget``, ``<metric>_mean`` and ``<metric>_std`` (a comparison's summary).
    """
    fig, axes = subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    models = list(dict.fromkeys(r["model"] for r in rows))
    for ax, metric in zip(axes[0], metrics):
        for model in models:
            mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["budget"])
            x = np.array([r["budget"] for r in mine], dtype=float)
            mean = np.array([r[f"{metric}_mean"] for r in mine])
            std = np.array([r[f"{metric}_std"] for r in mine])
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=model)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.set_xlabel(unit)
        ax.set_ylabel(f"test {metric}" + (" (macro)" if metric in ("precision", "recall", "f1") else ""))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


__all__ = ["budget_curves", "comparison_bars", "confusion_picture", "scatter"]
