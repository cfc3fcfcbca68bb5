"""Segmentation metrics from a confusion matrix accumulated over a whole split: pixel accuracy, per-class IoU, mean IoU.

The confusion matrix counts pixels, rows = true class, columns = predicted class; pixels whose truth is the ignore
value (255) are not counted. IoU of class k = TP / (TP + FP + FN) = C[k,k] / (row k + column k - C[k,k]); a class
that is neither present nor predicted anywhere in the split has no IoU (NaN) and is left out of the mean, as in the
PASCAL VOC and Cityscapes evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from caekit.data.imageset import to_unit
from caekit.metrics import IGNORE_INDEX, confusion_matrix, iou_from_confusion


@dataclass
class SegmentationScores:
    """Scores of one split; ``confusion`` is kept so that splits or runs can be summed and rescored."""

    confusion: Tensor
    classes: list[str]

    @property
    def pixel_accuracy(self) -> float:
        total = self.confusion.sum()
        return float(self.confusion.diagonal().sum() / total) if total else float("nan")

    @property
    def iou(self) -> dict[str, float]:
        return dict(zip(self.classes, iou_from_confusion(self.confusion).tolist()))

    @property
    def mean_iou(self) -> float:
        return float(iou_from_confusion(self.confusion).nanmean())

    @property
    def class_accuracy(self) -> dict[str, float]:
        """Recall per class: the fraction of its pixels predicted as it."""
        c = self.confusion.double()
        rows = c.sum(1)
        return dict(zip(self.classes, torch.where(rows > 0, c.diagonal() / rows.clamp_min(1), torch.nan).tolist()))

    def as_dict(self) -> dict[str, object]:
        return {
            "pixel_accuracy": self.pixel_accuracy,
            "mean_iou": self.mean_iou,
            "iou": self.iou,
            "class_accuracy": self.class_accuracy,
            "confusion": self.confusion.tolist(),
            "classes": self.classes,
        }

    def table(self) -> str:
        """Markdown: one row per class (IoU, accuracy), then the means."""
        lines = ["| class | IoU | accuracy |", "|---|---:|---:|"]
        acc = self.class_accuracy
        lines += [f"| {name} | {value:.3f} | {acc[name]:.3f} |" for name, value in self.iou.items()]
        lines.append(f"| **mean IoU / pixel accuracy** | **{self.mean_iou:.3f}** | **{self.pixel_accuracy:.3f}** |")
        return "\n".join(lines)


@torch.inference_mode()
def evaluate_segmentation(
    model: nn.Module, images: Tensor, masks: Tensor, classes: list[str], batch_size: int = 128, ignore_index: int = IGNORE_INDEX
) -> SegmentationScores:
    """Scores of a segmentation model over a whole split (uint8 or [0, 1] images [N, C, H, W], masks [N, H, W])."""
    model.eval()
    device = next(model.parameters()).device
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.long)
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        batch = to_unit(batch)
        pred = model(batch).argmax(1)
        confusion += confusion_matrix(pred, masks[start : start + batch_size].to(device), len(classes), ignore_index)
    return SegmentationScores(confusion, list(classes))


__all__ = ["IGNORE_INDEX", "SegmentationScores", "evaluate_segmentation"]
