"""Pixel-wise objectives (``segment``, ``superres``) and the inference helpers the CLI calls (masks, upscaling).

``segment``: K-channel logits against the batch's ``mask`` (uint8 class indices, 255 ignored); cross-entropy,
optionally plus ``dice`` x the soft multi-class Dice loss. Validation reports per image: loss, pixel accuracy and
IoU (mean over the classes present in that image's truth or prediction); ``val_iou`` picks the best checkpoint.
Split-level scores (per-class IoU and mean IoU from one confusion matrix) are ``evaluate.segmentation``'s.

``superres``: the low-resolution input is made on the fly from the batch image by antialiased bicubic downscaling
by ``scale`` (the usual "bicubic degradation" of SR benchmarks); loss l1 or mse against the original. Validation
reports PSNR and SSIM of the model and of bicubic upsampling of the same input, and the model's PSNR gain.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from caekit.data.canvas import read_mask
from caekit.data.datasets import IMAGE_EXTENSIONS, read_image
from caekit.data.imageset import ImageSet
from caekit.errors import ConfigError, DataError
from caekit.evaluate.metrics import psnr, ssim
from caekit.evaluate.segmentation import IGNORE_INDEX, SegmentationScores, confusion_matrix, per_image_scores
from caekit.fileio import atomic_write_text
from caekit.train.objectives import Objective, reconstruction_loss, register_objective, unwrap
from caekit.viz import pixelwise as pixviz


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
    def pictures(self, model: nn.Module, images: Tensor, folder: Path) -> list[Path]:
        predictions = model(images).argmax(1)
        truth = self._truth.get(_image_key(images[0]))
        truth = truth[: len(images)] if truth is not None and len(truth) >= len(images) else None
        count = getattr(unwrap(model), "classes", int(predictions.max()) + 1)
        names = self.class_names if len(self.class_names) == count else ["background", *(f"class{i}" for i in range(1, count))]
        return [pixviz.segmentation_overlays(images.cpu(), predictions.cpu(), folder / "segmentation.png", names, truth)]


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
        raise ConfigError("objective 'superres' needs a super-resolution model: set model.args.task=superres and "
                          "model.args.scale=2 or 4")
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
        return {"loss": per_image, "psnr": model_psnr, "ssim": ssim(output, target), "bicubic_psnr": base_psnr,
                "bicubic_ssim": ssim(base, target), "psnr_gain": model_psnr - base_psnr}

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path) -> list[Path]:
        scale = self._scale(model)
        low, target = downscale(images, scale)
        outputs = model(low).float()
        return [pixviz.superres_rows(low.cpu(), bicubic(low, scale).cpu(), outputs.cpu(), target.cpu(),
                                     folder / "superres.png", title=f"x{scale}")]


# ------------------------------------------------------------------------------------------- using trained models


@torch.inference_mode()
def predict_masks(model: nn.Module, image: Tensor) -> Tensor:
    """Class index map [H, W] (int64) of one image (uint8 or [0, 1], [C, H, W]) at its own size."""
    device = next(model.parameters()).device
    x = image.to(device)
    x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    return model.eval()(x[None]).argmax(1)[0].cpu()


@torch.inference_mode()
def upscale(model: nn.Module, image: Tensor) -> Tensor:
    """One image (uint8 or [0, 1], [C, H, W]) upscaled by the model's scale, float in [0, 1]."""
    model_scale(model)
    device = next(model.parameters()).device
    x = image.to(device)
    x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    return model.eval()(x[None])[0].clamp(0, 1).cpu()


def _read(path: Path, channels: int) -> Tensor:
    """An image file as uint8 [C, H, W] at its own size."""
    img, why = read_image(path)
    if img is None:
        raise DataError(f"cannot read image '{path}': {why}")
    arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    return torch.from_numpy((arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)).copy())


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path)


def _as_uint8(image: Tensor) -> np.ndarray:
    """[C, H, W] in [0, 1] -> uint8 [H, W] or [H, W, 3]."""
    return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).squeeze(-1).numpy()


def segment_files(model: nn.Module, paths: list[Path], out: Path, meta: dict[str, Any], masks: Path | None = None) -> dict[str, Any]:
    """Segment image files at their own size; writes NAME_mask.png (class indices), NAME_overlay.png, overlays.png.

    With ``masks`` (a folder of ground-truth masks named like the images) the truth joins the overlays and the
    files are scored together (scores.json, iou.png). Returns {"overlays": path, and the scores when scored}.
    """
    if getattr(model, "task", "segment") != "segment":
        raise ConfigError("this model was not trained for segmentation (its task is super-resolution); use caekit upscale")
    channels = int(meta["image_shape"][0])
    count = getattr(model, "classes", None) or len(meta.get("classes", []))
    names = list(meta.get("classes") or [])
    names = names if len(names) == count else ["background", *(f"class{i}" for i in range(1, count))]
    out.mkdir(parents=True, exist_ok=True)
    images, predictions, truths = [], [], []
    confusion = torch.zeros(count, count, dtype=torch.long)
    for path in paths:
        image = _read(path, channels)
        pred = predict_masks(model, image)
        _save_png(pred.byte().numpy(), out / f"{path.stem}_mask.png")
        _save_png((pixviz.overlay(image.float() / 255, pred, count) * 255).round().astype(np.uint8), out / f"{path.stem}_overlay.png")
        if masks is not None:
            found = [p for p in masks.iterdir() if p.stem == path.stem and p.suffix.lower() in IMAGE_EXTENSIONS]
            if not found:
                raise DataError(f"no mask named '{path.stem}.*' in '{masks}'")
            truth = torch.from_numpy(np.asarray(read_mask(found[0]), dtype=np.uint8).copy())
            if truth.shape != pred.shape:
                raise DataError(f"mask '{found[0]}' is {truth.shape[1]}x{truth.shape[0]}, its image {pred.shape[1]}x{pred.shape[0]}")
            confusion += confusion_matrix(pred, truth, count)
            truths.append(truth)
        images.append(image.float() / 255)
        predictions.append(pred)
    same_size = len({tuple(i.shape) for i in images}) == 1
    report: dict[str, Any] = {}
    if same_size:
        report["overlays"] = pixviz.segmentation_overlays(torch.stack(images[:8]), torch.stack(predictions[:8]), out / "overlays.png",
                                                          names, torch.stack(truths[:8]) if truths else None)
    else:
        report["overlays"] = f"{len(paths)} overlays"
    if masks is not None:
        scores = SegmentationScores(confusion, names)
        atomic_write_text(out / "scores.json", json.dumps(scores.as_dict(), indent=1))
        pixviz.iou_bars(scores.iou, out / "iou.png")
        report.update(mean_iou=scores.mean_iou, pixel_accuracy=scores.pixel_accuracy)
    return report


def upscale_files(model: nn.Module, paths: list[Path], out: Path, meta: dict[str, Any]) -> Path:
    """Upscale image files by the model's scale; writes NAME_xS.png, NAME_bicubic.png and comparison.png."""
    scale = model_scale(model)
    channels = int(meta["image_shape"][0])
    out.mkdir(parents=True, exist_ok=True)
    lows, bases, outputs = [], [], []
    for path in paths:
        low = _read(path, channels).float() / 255
        output, base = upscale(model, low), bicubic(low[None], scale)[0]
        _save_png(_as_uint8(output), out / f"{path.stem}_x{scale}.png")
        _save_png(_as_uint8(base), out / f"{path.stem}_bicubic.png")
        lows.append(low), bases.append(base), outputs.append(output)
    if len({tuple(i.shape) for i in lows}) == 1:
        return pixviz.superres_rows(torch.stack(lows), torch.stack(bases), torch.stack(outputs), None, out / "comparison.png",
                                    title=f"x{scale}")
    return out


__all__ = ["Segment", "SuperResolution", "bicubic", "dice_loss", "downscale", "model_scale", "predict_masks", "segment_files", "upscale",
           "upscale_files"]
