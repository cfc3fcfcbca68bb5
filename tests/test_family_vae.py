"""VAE: reparameterisation gradients, KL closed form, likelihood estimates, and real training through the engine."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from caekit.api import train
from caekit.checkpoint import read_checkpoint
from caekit.data.datasets import load_dataset
from caekit.errors import CaekitError
from caekit.evaluate.generative import elbo_and_nll
from caekit.layers import ResidualBlock
from caekit.models import create_model
from caekit.models.vae import ConvVAE, kl_standard_normal
from caekit.training.vae import ELBO


def test_reparameterisation_gradient_flows_to_mean_and_log_variance():
    torch.manual_seed(0)
    mean = torch.randn(5, 3, requires_grad=True)
    logvar = torch.randn(5, 3, requires_grad=True)
    torch.manual_seed(1)
    z = ConvVAE.reparameterise(mean, logvar)
    torch.manual_seed(1)
    eps = torch.randn(5, 3)
    assert torch.allclose(z, mean + torch.exp(0.5 * logvar) * eps)
    z.sum().backward()
    assert torch.allclose(mean.grad, torch.ones(5, 3))  # dz/dmean = 1
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)  # dz/dlogvar = sigma eps / 2


def test_kl_matches_the_closed_form_of_torch_distributions():
    torch.manual_seed(0)
    mean, logvar = torch.randn(7, 4), torch.randn(7, 4)
    expected = kl_divergence(Normal(mean, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(kl_standard_normal(mean, logvar), expected, atol=1e-5)
    assert torch.allclose(kl_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_bernoulli_log_likelihood_is_minus_bce_summed():
    model = ConvVAE((1, 8, 8), latent_dim=2, channels=(4,))
    logits, x = torch.zeros(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert torch.allclose(model.log_likelihood(logits, x), torch.full((2,), -64 * math.log(2)))


def test_kl_warmup_ramps_the_weight():
    objective = ELBO(beta=2.0, warmup_steps=10)
    assert objective.kl_weight() == 0
    objective.steps = 5
    assert objective.kl_weight() == pytest.approx(1.0)
    objective.steps = 50
    assert objective.kl_weight() == pytest.approx(2.0)


def test_vae_shapes_and_importance_sampled_bound_is_tighter_than_elbo():
    torch.manual_seed(0)
    model = create_model("vae", input_shape=(1, 8, 8), latent_dim=3, channels=(8, 16)).eval()
    x = torch.rand(4, 1, 8, 8)
    mean, logvar = model.posterior(x)
    assert mean.shape == logvar.shape == (4, 3)
    assert model(x).shape == x.shape and model(x).min() >= 0 and model(x).max() <= 1
    assert model.sample(5).shape == (5, 1, 8, 8)
    data = load_dataset("digits").subset(list(range(20)))
    scores = elbo_and_nll(model, data, k=20, binarisation="threshold")
    assert scores["nll"] <= -scores["elbo"] + 1e-4  # log of a mean >= mean of logs (Jensen)


@pytest.mark.slow
def test_elbo_training_through_the_engine_improves_the_bound(tmp_path):
    result = train(
        {
            "runs_dir": str(tmp_path),
            "name": "vae",
            "model": {"name": "vae", "args": {"latent_dim": 2, "channels": [8, 16]}},
            "data": {"name": "digits", "limit": 400},
            "objective": {"name": "elbo", "args": {"binarise": "threshold", "warmup_steps": 5}},
            "optim": {"lr": 0.003, "weight_decay": 0.0},
            "train": {"epochs": 3, "batch_size": 32, "progress": False},
        }
    )
    history = result.history
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert result.test["elbo"] == pytest.approx(-result.test["loss"])
    for picture in ("prior_samples.png", "interpolation.png", "manifold.png", "samples_per_epoch.png"):
        assert (result.run.path / picture).stat().st_size > 1000


def test_kl_warmup_goes_on_where_a_resumed_run_stopped(tmp_path):
    config = {
        "runs_dir": str(tmp_path),
        "model": {"name": "vae", "args": {"latent_dim": 2, "channels": [4]}},
        "data": {"name": "digits", "image_size": 8, "limit": 120, "val_fraction": 0.2},
        "objective": {"name": "elbo", "args": {"warmup_steps": 100}},
        "train": {"batch_size": 32, "progress": False},
    }
    straight = train({**config, "name": "straight", "train": {**config["train"], "epochs": 2}})
    train({**config, "name": "stopped", "train": {**config["train"], "epochs": 1}})
    resumed = train(resume=tmp_path / "stopped", overrides={"train.epochs": 2})
    # 96 training images in batches of 32: 3 steps an epoch, so the KL weight is 3/100 after one epoch, 6/100 after two.
    assert [round(r["train_beta"], 4) for r in resumed.history] == [round(r["train_beta"], 4) for r in straight.history]
    _, meta = read_checkpoint(resumed.run.checkpoint("last"))
    assert meta["objective_state"] == {"steps": 6}


def test_residual_blocks_deepen_the_vae_at_every_size_and_keep_its_shapes():
    plain, deep = create_model("vae", latent_dim=8), create_model("vae", latent_dim=8, blocks=2)
    x = torch.rand(3, 1, 28, 28)
    assert deep.decode_raw(deep.posterior(x)[0]).shape == x.shape
    blocks = [m for m in deep.modules() if isinstance(m, ResidualBlock)]
    # two at each of the encoder's sizes (14x14, 7x7) and the decoder's (7x7, 14x14)
    assert [b.body[0].in_channels for b in blocks] == [32, 32, 64, 64, 64, 64, 32, 32]
    extra = sum(p.numel() for b in blocks for p in b.parameters())
    assert sum(p.numel() for p in deep.parameters()) == sum(p.numel() for p in plain.parameters()) + extra
    with pytest.raises(CaekitError, match="blocks"):
        create_model("vae", blocks=-1)
