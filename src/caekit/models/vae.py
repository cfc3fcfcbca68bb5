"""Convolutional variational autoencoder (Kingma & Welling 2014), optionally class-conditional.

Encoder: strided convolutions -> mean and log-variance of a diagonal Gaussian q(z|x). Decoder: fully connected
-> transposed convolutions -> pixel logits (Bernoulli likelihood) or means (Gaussian likelihood with one learned
log-variance). ``forward`` returns the decoder's mean for the posterior mean, so ``caekit reconstruct`` works.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from caekit.errors import ConfigError
from caekit.layers import ConvTranspose2d, ResidualBlock
from caekit.models.cae import EncoderOutput
from caekit.models.registry import register_model
from caekit.spec import as_shape

LIKELIHOODS = ("bernoulli", "gaussian")


def down_sizes(size: int, steps: int) -> list[int]:
    """Spatial sizes after each stride-2 (k4 p1) convolution; sizes must halve exactly."""
    sizes = [size]
    for _ in range(steps):
        if sizes[-1] % 2:
            raise ConfigError(
                f"image size {size} cannot be halved {steps} times; use a size divisible by {2**steps} or fewer channel stages"
            )
        sizes.append(sizes[-1] // 2)
    return sizes


class VAEEncoder(nn.Module):
    """Strided convs (BN, LeakyReLU), each followed by ``blocks`` residual 3x3 blocks -> flat features -> (mean,
    log-variance)."""

    def __init__(
        self, in_channels: int, size: int, channels: tuple[int, ...], latent_dim: int, num_classes: int = 0, blocks: int = 0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels + (num_classes if num_classes else 0)
        for out in channels:
            layers += [nn.Conv2d(c, out, 4, 2, 1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2, inplace=True)]
            layers += [ResidualBlock(out, 0.2) for _ in range(blocks)]
            c = out
        self.convs = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.feature_shape = (c, *(down_sizes(size, len(channels))[-1],) * 2)
        self.mean = nn.Linear(math.prod(self.feature_shape), latent_dim)
        self.logvar = nn.Linear(math.prod(self.feature_shape), latent_dim)

    def forward(self, x: Tensor, labels: Tensor | None = None, keep: bool = True) -> EncoderOutput:
        """The contract's ``EncoderOutput`` whose code is the posterior mean (use ``posterior`` for both moments)."""
        return EncoderOutput(self.posterior(x, labels)[0])

    def posterior(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.num_classes:
            if labels is None:
                raise ConfigError("a conditional VAE needs the class labels")
            onehot = F.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
            x = torch.cat([x, onehot], 1)
        h = self.convs(x).flatten(1)
        return self.mean(h), self.logvar(h).clamp(-15, 15)


class VAEDecoder(nn.Module):
    """z (+ one-hot label) -> fc -> transposed convs, each size first refined by ``blocks`` residual 3x3 blocks ->
    per-pixel logits or means (unbounded)."""

    def __init__(
        self,
        out_channels: int,
        feature_shape: tuple[int, int, int],
        channels: tuple[int, ...],
        latent_dim: int,
        num_classes: int = 0,
        blocks: int = 0,
    ) -> None:
        super().__init__()
        self.feature_shape = feature_shape
        self.num_classes = num_classes
        self.fc = nn.Sequential(nn.Linear(latent_dim + num_classes, math.prod(feature_shape)), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c = feature_shape[0]
        for out in reversed(channels[:-1]):
            layers += [ResidualBlock(c) for _ in range(blocks)]
            layers += [nn.ConvTranspose2d(c, out, 4, 2, 1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            c = out
        layers += [ResidualBlock(c) for _ in range(blocks)]
        layers.append(ConvTranspose2d(c, out_channels, 4, 2, 1))  # caekit's: faster on the CPU for 1 or 3 channels
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.num_classes:
            if labels is None:
                raise ConfigError("a conditional VAE needs the class labels")
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], 1)
        return self.deconvs(self.fc(z).view(-1, *self.feature_shape))


class ConvVAE(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, int, int],
        latent_dim: int = 16,
        channels: tuple[int, ...] = (32, 64),
        likelihood: str = "bernoulli",
        num_classes: int = 0,
        blocks: int = 0,
    ) -> None:
        """``blocks``: residual 3x3 blocks at every size of the encoder and the decoder (0: the plain DCGAN-like VAE)."""
        super().__init__()
        if blocks < 0:
            raise ConfigError(f"blocks is a number of residual blocks at each size, at least 0, got {blocks}")
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood '{likelihood}'; choose one of: {', '.join(LIKELIHOODS)}")
        c, h, w = input_shape
        if h != w:
            raise ConfigError(f"the VAE needs square images, got {h}x{w}")
        self.input_shape = (c, h, w)
        self.latent_dim, self.likelihood, self.num_classes = latent_dim, likelihood, num_classes
        self.encoder = VAEEncoder(c, h, tuple(channels), latent_dim, num_classes, blocks)
        self.decoder = VAEDecoder(c, self.encoder.feature_shape, tuple(channels), latent_dim, num_classes, blocks)
        # Gaussian likelihood: one learned log-variance for all pixels (unused for Bernoulli)
        self.log_sigma2 = nn.Parameter(torch.full((), math.log(0.01)), requires_grad=likelihood == "gaussian")

    @property
    def code_size(self) -> int:
        return self.latent_dim

    def posterior(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.encoder.posterior(x, labels)

    @staticmethod
    def reparameterise(mean: Tensor, logvar: Tensor) -> Tensor:
        """z = mean + sigma * eps: a sample whose gradient flows into mean and log-variance."""
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)

    def decode_raw(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits (Bernoulli) or means (Gaussian) per pixel."""
        return self.decoder(z, labels)

    def mean_image(self, raw: Tensor) -> Tensor:
        return torch.sigmoid(raw) if self.likelihood == "bernoulli" else raw.clamp(0, 1)

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images in [0, 1] (the likelihood's mean) for latent codes."""
        return self.mean_image(self.decode_raw(z, labels))

    def log_likelihood(self, raw: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) per image, summed over pixels, in nats."""
        raw, x = raw.float(), x.float()
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(raw, x, reduction="none").flatten(1).sum(1)
        log_s2 = self.log_sigma2.float()
        return (-0.5 * ((x - raw) ** 2 / log_s2.exp() + log_s2 + math.log(2 * math.pi))).flatten(1).sum(1)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Posterior means as flat codes."""
        return self.posterior(x, labels)[0]

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images from the prior (labels: one class per image for a conditional VAE)."""
        device = self.log_sigma2.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device if generator is None else generator.device).to(
            device
        )
        if self.num_classes and labels is None:
            labels = torch.arange(n, device=device) % self.num_classes
        return self.decode(z, labels)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.num_classes and labels is None:
            raise ConfigError("a conditional VAE reconstructs only with labels; use model.decode(z, labels)")
        return self.decode(self.posterior(x, labels)[0], labels)


class LatentVariableModel(Protocol):
    """What importance sampling needs of a VAE: q(z|x), the decoder's raw output and log p(x|z)."""

    def posterior(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]: ...
    def decode_raw(self, z: Tensor, labels: Tensor | None = None) -> Tensor: ...
    def log_likelihood(self, raw: Tensor, x: Tensor) -> Tensor: ...


def importance_log_weights(
    model: LatentVariableModel, x: Tensor, labels: Tensor | None, k: int, generator: torch.Generator | None = None
) -> Tensor:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) for k draws z_i ~ q(z|x) (reparameterised, so gradients
    flow), as [k, N]; p(z) is the standard normal. ``logsumexp(w, 0) - log k`` is the IWAE bound on log p(x)."""
    mean, logvar = model.posterior(x, labels)
    mean, logvar = mean.float(), logvar.float()
    std = torch.exp(0.5 * logvar)
    log2pi = math.log(2 * math.pi)
    weights = []
    for _ in range(k):
        if generator is None:
            eps = torch.randn_like(mean)
        else:
            eps = torch.randn(mean.shape, generator=generator, device=generator.device).to(mean.device)
        z = mean + std * eps
        log_px = model.log_likelihood(model.decode_raw(z, labels), x)
        log_pz = -0.5 * (z.pow(2) + log2pi).sum(1)
        log_qz = -0.5 * (eps.pow(2) + logvar + log2pi).sum(1)
        weights.append(log_px + log_pz - log_qz)
    return torch.stack(weights)


def iwae_bound(log_weights: Tensor) -> Tensor:
    """The importance-weighted bound on log p(x) per image (Burda et al. 2016): log of the mean of the k weights."""
    return torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[0])


def kl_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per row, in nats (closed form)."""
    return 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1 - logvar.float()).sum(1)


@register_model("vae", options=ConvVAE, fixed=("num_classes",))
def vae(input_shape: tuple[int, int, int] | list[int] = (1, 28, 28), **options: Any) -> ConvVAE:
    """Convolutional VAE: strided-conv encoder to mean/log-variance, transposed-conv decoder."""
    return ConvVAE(as_shape(input_shape), **options)


@register_model("cvae", options=ConvVAE)
def cvae(input_shape: tuple[int, int, int] | list[int] = (1, 28, 28), num_classes: int = 10, **options: Any) -> ConvVAE:
    """Class-conditional convolutional VAE (label one-hot into encoder and decoder), for augmentation."""
    return ConvVAE(as_shape(input_shape), num_classes=num_classes, **options)
