"""Evaluating generative models: ELBO and importance-sampled log-likelihood, sample coverage by a judge classifier,
and the generative-augmentation experiment on an imbalanced labelled set.

The judge is a small CNN (``JudgeCNN``, trained by ``caekit.workflows.judge``) that decides which class a generated
sample shows and how confidently, which detects mode collapse (missing classes).
"""

from __future__ import annotations

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
    from caekit.models.vae import importance_log_weights, iwae_bound

    model = cast("ConvVAE", model)
    model.eval()
    device = next(model.parameters()).device
    gen = seeded(seed)
    elbos, lls = [], []
    for start in range(0, len(data), batch_size):
        x = binarise(data.unit_images(start, start + batch_size), binarisation, gen).to(device)
        labels = data.labels[start : start + batch_size].to(device) if getattr(model, "num_classes", 0) else None
        # in chunks of at most 100 draws, so k = 5000 fits in memory; the bound pools all k weights
        chunks = [importance_log_weights(model, x, labels, min(100, k - done), gen) for done in range(0, k, 100)]
        w = torch.cat(chunks)  # [k, N]
        elbos.append(w.mean(0).cpu())
        lls.append(iwae_bound(w).cpu())
    elbo, ll = torch.cat(elbos), torch.cat(lls)
    return {"elbo": elbo.mean().item(), "nll": -ll.mean().item(), "k": k, "images": len(data)}


# --------------------------------------------------------------------------------------------- sample quality


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ([N, D] each; FID's formula):
    |m1 - m2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)). The trace of the square root is taken from the eigenvalues of
    S1^(1/2) S2 S1^(1/2), which is symmetric, so no complex square root of a non-symmetric matrix is needed."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ConfigError(f"Fréchet distance needs two [N, D] feature sets with N >= 2, got {a.shape} and {b.shape}")
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False).reshape(a.shape[1], -1), np.cov(b, rowvar=False).reshape(b.shape[1], -1)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(middle.clip(min=0)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``fake`` against ``real`` features ([N, D]):
    each set's manifold is the union of balls around its points reaching their k-th nearest neighbour; precision is
    the share of fake points inside the real manifold, recall the share of real points inside the fake one."""

    def radii(points: Tensor) -> Tensor:
        return torch.cdist(points, points).kthvalue(k + 1, dim=1).values  # the 1st neighbour is the point itself

    def inside(points: Tensor, centres: Tensor, reach: Tensor) -> float:
        return (torch.cdist(points, centres) <= reach[None, :]).any(1).float().mean().item()

    real, fake = real.double(), fake.double()
    if min(len(real), len(fake)) <= k:
        raise ConfigError(f"precision/recall with k = {k} needs more than {k} points in each set")
    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


@torch.no_grad()
def judge_features(judge: JudgeCNN, images: Tensor, batch_size: int = 500) -> Tensor:
    """The judge's penultimate activations (float images [N, C, H, W] in [0, 1]): the feature space of the Fréchet
    distance and of precision/recall here, since there is no ImageNet Inception network offline."""
    judge.eval()
    device = next(judge.parameters()).device
    trunk = nn.Sequential(*judge.features, *list(judge.head)[:-1])
    return torch.cat([trunk(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)])


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
        torch.cat([data.pixels(), synthetic]), torch.cat([data.labels, labels.cpu()]), data.classes, f"{data.name}+synthetic"
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
    predicted = classify(model, test.pixels())[0].numpy()
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
