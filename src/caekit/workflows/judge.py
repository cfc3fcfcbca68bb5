"""The judge classifier that scores generated samples: a ``JudgeCNN`` trained on real images through the one engine."""

from __future__ import annotations

import torch
from torch import nn

from caekit.config import OptimConfig, TrainConfig
from caekit.data.imageset import ImageSet
from caekit.evaluate.generative import JudgeCNN
from caekit.runner import fit
from caekit.training.supervised import Classify


def train_classifier(
    train: ImageSet,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    val: ImageSet | None = None,
    device: str = "auto",
    progress: bool = False,
) -> nn.Module:
    """A ``JudgeCNN`` trained on ``train`` with plain cross-entropy (no run folder); the last epoch's weights."""
    torch.manual_seed(seed)
    model = JudgeCNN(train.shape, len(train.classes))
    return fit(
        model,
        Classify(),
        train,
        val,
        TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, device=device, progress=progress),
        OptimConfig(lr=lr, weight_decay=0.0),
    ).model


__all__ = ["train_classifier"]
