"""Evaluating generative models: ELBO and importance-sampled log-likelihood, sample coverage by a judge classifier,
and the generative-augmentation experiment on an imbalanced labelled set.

The judge is a small CNN (``JudgeCNN``, trained by ``caekit.workflows.judge``) that decides which class a generated
sample shows and how confidently, which detects mode collapse (missing classes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import Tensor, nn

from caekit.data.imageset import ImageSet, to_unit
from caekit.data.noise import binarise, seeded
from caekit.errors import ConfigError
from caekit.inference import classify

if TYPE_CHECKING:
    from caekit.models.gan import DCGAN
    from caekit.models.vae import ConvVAE

# --------------------------------------------------------------------------------------------- likelihoods


@torch.no_grad()
def elbo_and_nll(
    model: nn.Module, data: ImageSet, k: int = 100, binarisation: str = "threshold", batch_size: int = 100, seed: int = 0
) -> dict[str, float]:
    """Test ELBO and the importance-sampled log-likelihood (Burda et al. 2016) with ``k`` samples, nats per image.

    log p(x) ~= logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k, z_i ~ q(z|x). It is a lower bound
    that tightens as k grows; ``nll`` is its negative. ``binarisation`` must match the data the model was fitted to.
    """
    model = cast("ConvVAE", model)
    model.eval()
    device = next(model.parameters()).device
    gen = seeded(seed)
    elbos, lls = [], []
    log2pi = math.log(2 * math.pi)
    for start in range(0, len(data), batch_size):
        x = binarise(data.unit_images(start, start + batch_size), binarisation, gen).to(device)
        labels = data.labels[start : start + batch_size].to(device) if getattr(model, "num_classes", 0) else None
        mean, logvar = model.posterior(x, labels)
        std = torch.exp(0.5 * logvar)
        weights = []
        for _ in range(k):
            eps = torch.randn(mean.shape, generator=gen).to(device)
            z = mean + std * eps
            log_px = model.log_likelihood(model.decode_raw(z, labels), x)
            log_pz = -0.5 * (z.pow(2) + log2pi).sum(1)
            log_qz = -0.5 * (eps.pow(2) + logvar + log2pi).sum(1)
            weights.append(log_px + log_pz - log_qz)
        w = torch.stack(weights)  # [k, N]
        elbos.append(w.mean(0).cpu())
        lls.append((torch.logsumexp(w, 0) - math.log(k)).cpu())
    elbo, ll = torch.cat(elbos), torch.cat(lls)
    return {"elbo": elbo.mean().item(), "nll": -ll.mean().item(), "k": k, "images": len(data)}


# --------------------------------------------------------------------------------------------- the judge classifier


class JudgeCNN(nn.Module):
    """A small CNN classifier (two conv blocks, dropout, two fc layers): ~99% on MNIST after a few epochs."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(True),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(True), nn.Linear(128, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@dataclass
class Coverage:
    """How a judge sees generated samples: classes hit, confidence, per-class counts."""

    counts: np.ndarray
    confidence: np.ndarray  # mean max-probability per predicted class
    mean_confidence: float
    confident_fraction: float  # samples with max-probability >= threshold
    classes_covered: int  # classes predicted for at least min_share of the samples
    label_agreement: float | None  # conditional models: fraction whose predicted class is the asked-for class

    def row(self) -> dict[str, Any]:
        return {
            "classes covered": self.classes_covered,
            "mean confidence": round(self.mean_confidence, 4),
            "confident (>=0.9)": round(self.confident_fraction, 4),
            "min/max class share": f"{self.counts.min() / self.counts.sum():.3f}/{self.counts.max() / self.counts.sum():.3f}",
            **({"label agreement": round(self.label_agreement, 4)} if self.label_agreement is not None else {}),
        }


def sample_coverage(
    judge: nn.Module,
    samples: Tensor,
    num_classes: int,
    labels: Tensor | None = None,
    threshold: float = 0.9,
    min_share: float = 0.02,
) -> Coverage:
    """Judge ``samples`` (float [0, 1]); a class counts as covered when it gets at least ``min_share`` of them."""
    _, probs = classify(judge, samples)
    confidence, predicted = probs.max(1)
    counts = np.bincount(predicted.numpy(), minlength=num_classes)
    per_class = np.array([confidence[predicted == c].mean().item() if counts[c] else 0.0 for c in range(num_classes)])
    agreement = (predicted == labels.cpu()).float().mean().item() if labels is not None else None
    return Coverage(
        counts,
        per_class,
        confidence.mean().item(),
        (confidence >= threshold).float().mean().item(),
        int((counts >= min_share * len(samples)).sum()),
        agreement,
    )


# --------------------------------------------------------------------------------------------- augmentation


def imbalanced(data: ImageSet, rare: list[int], rare_count: int, common_count: int, seed: int = 0) -> ImageSet:
    """A subset with ``rare_count`` images of each rare class and ``common_count`` of every other class."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(len(data.classes)):
        members = np.flatnonzero(data.labels.numpy() == c)
        want = rare_count if c in rare else common_count
        if want > len(members):
            raise ConfigError(f"class {data.classes[c]} has {len(members)} images, fewer than the {want} asked for")
        picked.append(rng.permutation(members)[:want])
    return data.subset(np.sort(np.concatenate(picked)), f"{data.name}-imbalanced")


def with_synthetic(data: ImageSet, images: Tensor, labels: Tensor) -> ImageSet:
    """``data`` plus generated images (float [0, 1] -> uint8)."""
    synthetic = (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    return ImageSet(
        torch.cat([data.images, synthetic]), torch.cat([data.labels, labels.cpu()]), data.classes, f"{data.name}+synthetic"
    )


def oversampled(data: ImageSet, target: int, rare: list[int], seed: int = 0) -> ImageSet:
    """Rare classes repeated (random duplicates) up to ``target`` images each: the no-generator baseline."""
    rng = np.random.default_rng(seed)
    extra = []
    for c in rare:
        members = np.flatnonzero(data.labels.numpy() == c)
        extra.append(rng.choice(members, target - len(members), replace=True))
    idx = np.concatenate([np.arange(len(data)), *extra])
    return data.subset(idx, f"{data.name}-oversampled")


def classification_scores(model: nn.Module, test: ImageSet, rare: list[int]) -> dict[str, float]:
    """Accuracy, macro F1 over all classes and macro F1 over the rare classes only."""
    predicted = classify(model, test.images)[0].numpy()
    truth = test.labels.numpy()
    common = [c for c in range(len(test.classes)) if c not in rare]
    return {
        "accuracy": accuracy_score(truth, predicted),
        "macro F1": f1_score(truth, predicted, average="macro"),
        "rare macro F1": f1_score(truth, predicted, labels=rare, average="macro"),
        "common macro F1": f1_score(truth, predicted, labels=common, average="macro"),
    }


@torch.no_grad()
def conditional_samples(
    model: nn.Module, data: ImageSet, classes: list[int], per_class: int, mode: str = "prior", seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``per_class`` generated images (float [0, 1]) of each class from a conditional VAE or DCGAN.

    ``prior``: z ~ N(0, I) with the class label. ``posterior`` (conditional VAE only): z drawn from q(z|x, y) of a
    real image x of that class, so each synthetic image is a variation of a real one; with very few examples of a
    class the prior mode tends to ignore the label, the posterior mode cannot.
    """
    model = cast("ConvVAE | DCGAN", model)
    gen = seeded(seed)
    images, labels = [], []
    device = next(model.parameters()).device
    for c in classes:
        y = torch.full((per_class,), c, dtype=torch.long, device=device)
        if mode == "prior":
            images.append(model.sample(per_class, y, generator=gen))
        elif mode == "posterior":
            members = torch.nonzero(data.labels == c).flatten()
            if not len(members):
                raise ConfigError(f"class {data.classes[c]} has no images to draw posterior samples from")
            pick = members[torch.randint(len(members), (per_class,), generator=gen)]
            x = to_unit(data.images[pick]).to(device)
            mean, logvar = cast("ConvVAE", model).posterior(x, y)
            z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen).to(device)
            images.append(cast("ConvVAE", model).decode(z, y))
        else:
            raise ConfigError(f"unknown sampling mode '{mode}'; choose prior or posterior")
        labels.append(y)
    return torch.cat(images).cpu(), torch.cat(labels).cpu()
