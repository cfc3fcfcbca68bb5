"""The family's literature metrics: the IWAE bound, the Fréchet distance, improved precision and recall."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import Tensor

from caekit.errors import ConfigError
from caekit.evaluate.generative import JudgeCNN, frechet_distance, judge_features, precision_recall
from caekit.models import create_model
from caekit.models.vae import importance_log_weights, iwae_bound
from caekit.training.vae import ELBO


class ExactPosterior:
    """p(z) = N(0, 1), p(x|z) = N(z, 1), so p(x) = N(0, 2) and the posterior is N(x/2, 1/2), given to q exactly."""

    def posterior(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x / 2, torch.full_like(x, math.log(0.5))

    def decode_raw(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return z

    def log_likelihood(self, raw: Tensor, x: Tensor) -> Tensor:
        return (-0.5 * ((x - raw) ** 2 + math.log(2 * math.pi))).sum(1)


def test_iwae_bound_is_tight_for_an_exact_posterior() -> None:
    x = torch.tensor([[-1.5], [0.0], [0.7], [2.0]])
    log_px = -0.5 * (x[:, 0] ** 2 / 2 + math.log(2 * math.pi * 2))  # log N(x; 0, 2), by hand
    for k in (1, 7, 50):
        weights = importance_log_weights(ExactPosterior(), x, None, k, torch.Generator().manual_seed(k))
        assert weights.shape == (k, 4)
        assert torch.allclose(weights, log_px.expand(k, 4), atol=1e-5)  # every weight is p(x) itself
        assert torch.allclose(iwae_bound(weights), log_px, atol=1e-5)


def test_iwae_bound_rises_with_k_for_a_real_vae() -> None:
    torch.manual_seed(0)
    model = create_model("vae", input_shape=(1, 16, 16), latent_dim=4).eval()
    x = (torch.rand(8, 1, 16, 16) > 0.5).float()
    with torch.no_grad():
        bounds = [
            iwae_bound(importance_log_weights(model, x, None, k, torch.Generator().manual_seed(1))).mean() for k in (1, 10, 200)
        ]
    assert bounds[0] < bounds[1] < bounds[2]  # log-mean-exp of more weights: a tighter lower bound (Burda et al.)


def test_iwae_objective_trains_and_reports_the_bound() -> None:
    model = create_model("vae", input_shape=(1, 16, 16), latent_dim=4)
    objective = ELBO(binarise="dynamic", samples=5)
    batch = {"image": torch.rand(6, 1, 16, 16)}
    loss, metrics = objective.loss(model, batch)
    loss.backward()
    assert metrics["iwae"] == pytest.approx(-loss.item())
    assert all(p.grad is not None for p in model.encoder.parameters())
    values = objective.evaluate(model, batch)
    assert values["iwae"].shape == (6,) and torch.equal(values["loss"], -values["iwae"])
    assert (values["iwae"] >= values["elbo"] - 5).all()  # on average the bound is above the one-sample ELBO
    with pytest.raises(ConfigError, match="no KL weight"):
        ELBO(samples=5, beta=0.5)
    with pytest.raises(ConfigError, match="at least 1"):
        ELBO(samples=0)


def test_frechet_distance_matches_scipy_on_small_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.multivariate_normal([0, 1, 2], [[2, 0.5, 0], [0.5, 1, 0.3], [0, 0.3, 0.5]], size=400)
    b = rng.multivariate_normal([1, 1, 0], [[1, 0, 0], [0, 3, 1], [0, 1, 1]], size=300)
    m1, m2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    reference = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # one-dimensional closed form: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[3.0], [7.0]])) == pytest.approx(
        (1 - 5) ** 2 + (math.sqrt(2) - math.sqrt(8)) ** 2
    )
    with pytest.raises(ConfigError, match="two \\[N, D\\] feature sets"):
        frechet_distance(a, b[:, :2])


def test_precision_recall_by_hand() -> None:
    real = torch.tensor([[0.0, 0], [1, 0], [0, 1], [1, 1]])  # k = 1: every real ball has radius 1
    fake = torch.tensor([[0.5, 0.5], [5, 5], [0.9, 0.1], [9, 10]])  # two inside the real manifold, two far away
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == 0.5
    # fake radii (k = 1): (0.5,.5) and (0.9,.1) 0.566 (each other), (5,5) 6.364 (to (0.5,.5)), (9,10) 6.403 (to (5,5)).
    # real (1,0) is 0.141 from (0.9,.1): inside; (1,1) is 5.657 from (5,5): inside; (0,0) is 0.707 from the nearest
    # fake, 7.07 from (5,5): outside; (0,1) is 6.403 from (5,5), just outside its 6.364: two of four covered
    assert recall == 0.5
    assert precision_recall(real, real.clone(), k=1) == (1.0, 1.0)
    with pytest.raises(ConfigError, match="more than 3 points"):
        precision_recall(real[:3], fake, k=3)


def test_judge_features_are_the_penultimate_layer() -> None:
    judge = JudgeCNN((1, 28, 28), 10).eval()
    images = torch.rand(7, 1, 28, 28)
    features = judge_features(judge, images, batch_size=3)
    assert features.shape == (7, 128)
    with torch.no_grad():
        assert torch.allclose(judge.head[-1](features), judge(images), atol=1e-5)
