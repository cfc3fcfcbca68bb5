"""Pixel-wise objectives: ``segment`` and ``superres``.

``segment``: K-channel logits against the batch's ``mask`` (uint8 class indices, 255 ignored); cross-entropy,
optionally plus ``dice`` x the soft multi-class Dice loss. Validation reports per image: loss, pixel accuracy and
IoU (mean over the classes present in that image's truth or prediction); ``val_iou`` picks the best checkpoint.
Split-level scores (per-class IoU and mean IoU from one confusion matrix) are ``evaluate.segmentation``'s.

``superres``: the low-resolution input is made on the fly from the batch image by antialiased bicubic downscaling
by ``scale`` (the usual "bicubic degradation" of SR benchmarks); loss l1 or mse against the original. Validation
reports PSNR and SSIM of the model and of bicubic upsampling of the same input, and the model's PSNR gain.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from caekit.data.imageset import ImageSet
from caekit.errors import ConfigError
from caekit.metrics import IGNORE_INDEX, per_image_scores, psnr, ssim
from caekit.training.objectives import Objective, Painter, reconstruction_loss, register_objective, unwrap


def _masks(batch: dict[str, Tensor], classes: int, ignore_index: int) -> Tensor:
    if "mask" not in batch:
        raise ConfigError("objective 'segment' needs a dataset with per-pixel masks (digit-canvas, mask-folder)")
    target = batch["mask"].long()
    highest = int(torch.where(target == ignore_index, 0, target).max())
    if highest >= classes:
        raise ConfigError(f"a mask holds class {highest} but the model predicts {classes} classes; set model.args.classes")
    return target


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX, eps: float = 1.0) -> Tensor:
    """Soft multi-class Dice loss: 1 - mean over classes of 2|P*T| / (|P| + |T|), over the batch's labelled pixels."""
    classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    probs = logits.float().softmax(1) * valid
    onehot = F.one_hot(torch.where(valid[:, 0], target, 0), classes).permute(0, 3, 1, 2).float() * valid
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + eps) / (total + eps)).mean()


def _image_key(image: Tensor) -> bytes:
    return (image.detach().float() * 255).round().byte().cpu().numpy().tobytes()


@register_objective("segment")
class Segment(Objective):
    """Semantic segmentation: cross-entropy (+ ``dice`` x Dice) on K-channel logits; monitors validation IoU."""

    monitor = "val_iou"
    monitor_mode = "max"

    def __init__(self, dice: float = 0.0, class_weights: list[float] | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        if dice < 0:
            raise ConfigError(f"the Dice weight must be >= 0, got {dice}")
        self.dice, self.ignore_index = dice, ignore_index
        self.class_weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        # The engine hands pictures() only images; the masks of the same images are remembered from the evaluation
        # pass that precedes it (keyed by each batch's first image, a few masks per batch).
        self._truth: OrderedDict[bytes, Tensor] = OrderedDict()
        self.class_names: list[str] = []

    def _loss(self, logits: Tensor, target: Tensor) -> Tensor:
        weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
        if weight is not None and len(weight) != logits.shape[1]:
            raise ConfigError(f"class_weights has {len(weight)} values but the model predicts {logits.shape[1]} classes")
        loss = F.cross_entropy(logits.float(), target, weight=weight, ignore_index=self.ignore_index)
        return loss + self.dice * dice_loss(logits, target, self.ignore_index) if self.dice else loss

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits = model(batch["image"])
        return self._loss(logits, _masks(batch, logits.shape[1], self.ignore_index)), {}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        logits = model(batch["image"]).float()
        target = _masks(batch, logits.shape[1], self.ignore_index)
        weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
        per_pixel = F.cross_entropy(logits, target, weight=weight, ignore_index=self.ignore_index, reduction="none")
        labelled = (target != self.ignore_index).flatten(1).sum(1).clamp_min(1)
        loss = per_pixel.flatten(1).sum(1) / labelled
        accuracy, iou = per_image_scores(logits.argmax(1), target, logits.shape[1], self.ignore_index)
        self._remember(batch["image"], batch["mask"])
        return {"loss": loss, "pixel_accuracy": accuracy, "iou": iou}

    def _remember(self, images: Tensor, masks: Tensor, keep: int = 16) -> None:
        self._truth[_image_key(images[0])] = masks[:keep].cpu()
        while len(self._truth) > 256:
            self._truth.popitem(last=False)

    def sample_weights(self, data: ImageSet) -> Tensor | None:
        self.class_names = list(data.classes)  # the engine shows us the training set here: keep its class names
        return None

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path, draw: Painter) -> list[Path]:
        predictions = model(images).argmax(1)
        truth = self._truth.get(_image_key(images[0]))
        truth = truth[: len(images)] if truth is not None and len(truth) >= len(images) else None
        count = getattr(unwrap(model), "classes", int(predictions.max()) + 1)
        names = self.class_names if len(self.class_names) == count else ["background", *(f"class{i}" for i in range(1, count))]
        return [draw.segmentation_overlays(images.cpu(), predictions.cpu(), folder / "segmentation.png", names, truth)]


def downscale(images: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """(low-resolution input, high-resolution target): the target cropped to a multiple of ``scale``, the input its
    antialiased bicubic downscaling, clamped to [0, 1]."""
    h, w = images.shape[-2] // scale * scale, images.shape[-1] // scale * scale
    if h == 0 or w == 0:
        raise ConfigError(f"images of {images.shape[-2]}x{images.shape[-1]} are smaller than the scale {scale}")
    target = images[..., :h, :w]
    low = F.interpolate(target.float(), size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return low.clamp(0, 1), target


def bicubic(low: Tensor, scale: int) -> Tensor:
    """The baseline: bicubic upsampling by ``scale``, clamped to [0, 1]."""
    size = (low.shape[-2] * scale, low.shape[-1] * scale)
    return F.interpolate(low.float(), size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def model_scale(model: nn.Module) -> int:
    scale = getattr(unwrap(model), "scale", 1)
    if getattr(unwrap(model), "task", "superres") != "superres" or scale < 2:
        raise ConfigError(
            "objective 'superres' needs a super-resolution model: set model.args.task=superres and model.args.scale=2 or 4"
        )
    return int(scale)


@register_objective("superres")
class SuperResolution(Objective):
    """Super-resolution from on-the-fly bicubic downscaling; validation: PSNR/SSIM of the model and of bicubic."""

    monitor = "val_psnr"
    monitor_mode = "max"

    def __init__(self, scale: int | None = None, loss: str = "l1") -> None:
        if loss not in ("l1", "mse"):
            raise ConfigError(f"unknown super-resolution loss '{loss}'; choose l1 or mse")
        self.scale, self.loss_name = scale, loss

    def _scale(self, model: nn.Module) -> int:
        scale = model_scale(model)
        if self.scale is not None and self.scale != scale:
            raise ConfigError(f"objective.args.scale is {self.scale} but the model upsamples by {scale}; make them equal")
        return scale

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        low, target = downscale(batch["image"], self._scale(model))
        return reconstruction_loss(self.loss_name, model(low), target), {}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        scale = self._scale(model)
        low, target = downscale(batch["image"], scale)
        raw = model(low).float()
        per_image = reconstruction_loss(self.loss_name, raw, target, "none").flatten(1).mean(1)
        output, base = raw.clamp(0, 1), bicubic(low, scale)
        model_psnr, base_psnr = psnr(output, target), psnr(base, target)
        return {
            "loss": per_image,
            "psnr": model_psnr,
            "ssim": ssim(output, target),
            "bicubic_psnr": base_psnr,
            "bicubic_ssim": ssim(base, target),
            "psnr_gain": model_psnr - base_psnr,
        }

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path, draw: Painter) -> list[Path]:
        scale = self._scale(model)
        low, target = downscale(images, scale)
        outputs = model(low).float()
        return [
            draw.superres_rows(
                low.cpu(), bicubic(low, scale).cpu(), outputs.cpu(), target.cpu(), folder / "superres.png", title=f"x{scale}"
            )
        ]


__all__ = ["Segment", "SuperResolution", "bicubic", "dice_loss", "downscale", "model_scale"]
