"""Metrics on tensors, a leaf: image quality (PSNR, SSIM) in [0, 1], and pixel-wise class scores (confusion, IoU)."""

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


# ------------------------------------------------------------------------------------------- segmentation

IGNORE_INDEX = 255


def confusion_matrix(pred: Tensor, target: Tensor, classes: int, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """int64 [classes, classes] pixel counts (rows: truth, columns: prediction) of label maps of any equal shape."""
    pred, target = pred.flatten().long(), target.flatten().long()
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    if len(target) and (int(target.max()) >= classes or int(target.min()) < 0):
        raise ValueError(f"a mask holds class {int(target.max())}, outside 0..{classes - 1}")
    return torch.bincount(target * classes + pred, minlength=classes * classes).view(classes, classes).cpu()


def iou_from_confusion(confusion: Tensor) -> Tensor:
    """Per-class IoU (float64; NaN where a class is neither present nor predicted)."""
    c = confusion.double()
    tp = c.diagonal()
    union = c.sum(0) + c.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def per_image_scores(pred: Tensor, target: Tensor, classes: int, ignore_index: int = IGNORE_INDEX) -> tuple[Tensor, Tensor]:
    """Per-image pixel accuracy and mean IoU (over the classes present in that image's truth or prediction), [N] each."""
    n = len(pred)
    valid = target != ignore_index
    pred, target = pred.long().flatten(1), torch.where(valid, target.long(), 0).flatten(1)
    valid = valid.flatten(1)
    offsets = torch.arange(n, device=pred.device)[:, None] * classes * classes
    counts = torch.bincount((offsets + target * classes + pred)[valid], minlength=n * classes * classes)
    confusion = counts.view(n, classes, classes).double()
    tp = confusion.diagonal(dim1=1, dim2=2)
    union = confusion.sum(1) + confusion.sum(2) - tp
    present = union > 0
    iou = (torch.where(present, tp / union.clamp_min(1), 0).sum(1) / present.sum(1).clamp_min(1)).float()
    accuracy = (tp.sum(1) / valid.sum(1).clamp_min(1)).float()
    return accuracy, iou
