"""Augmentation of training batches with torchvision's transforms v2, image by image, on the training device.

Presets (``data.augment``): ``none``; ``digits`` for small grey images whose orientation carries the class (random
crop with 2 px padding, rotation up to 10 degrees, 10 % translation, scale 0.9-1.1, no flips); ``natural`` for
photographs (random crop with 4 px padding, horizontal flips, brightness/contrast jitter 0.2, random erasing 0.25);
``auto``: nothing for an autoencoder's objective, and for ``classify`` ``digits`` on grey images or ``natural`` on
colour ones. The random draws come from torch's global generator, which the engine seeds per rank and stores in
every checkpoint, so a resumed run sees exactly the augmentations it would have seen.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchvision.transforms import v2

from caekit.errors import ConfigError

PRESETS = ("none", "auto", "digits", "natural")
AUGMENTED_OBJECTIVES = ("classify",)  # what "auto" augments: a classifier, not a model asked to reproduce its input


def resolve(preset: str, objective: str, channels: int) -> str:
    """The preset ``auto`` stands for, given the objective and the images' channels."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown data.augment '{preset}'; choose one of: {', '.join(PRESETS)}")
    if preset != "auto":
        return preset
    if objective not in AUGMENTED_OBJECTIVES:
        return "none"
    return "digits" if channels == 1 else "natural"


def transform(preset: str, size: int) -> v2.Transform | None:
    """The transform of a preset for square images of ``size`` pixels (None for ``none``)."""
    if preset == "none":
        return None
    if preset == "digits":
        return v2.Compose([v2.RandomCrop(size, padding=2), v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))])
    if preset == "natural":
        return v2.Compose(
            [
                v2.RandomCrop(size, padding=4),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(brightness=0.2, contrast=0.2),
                v2.RandomErasing(p=0.25),
            ]
        )
    raise ConfigError(f"unknown augmentation preset '{preset}'")


def batch_augmenter(preset: str, objective: str, shape: tuple[int, int, int]) -> Callable[[Tensor], Tensor] | None:
    """A function that augments a uint8 batch [N, C, H, W] image by image (each its own random draw), or None."""
    chosen = transform(resolve(preset, objective, shape[0]), shape[1])
    if chosen is None:
        return None

    def augment(images: Tensor) -> Tensor:
        return torch.stack([chosen(image) for image in images])

    return augment


__all__ = ["AUGMENTED_OBJECTIVES", "PRESETS", "batch_augmenter", "resolve", "transform"]
