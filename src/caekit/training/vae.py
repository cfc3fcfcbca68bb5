"""``elbo``: the (conditional) VAE's objective, the negative evidence lower bound in nats per image."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from caekit.data.noise import BINARISE, binarise, seeded
from caekit.errors import ConfigError
from caekit.training.objectives import Objective, Painter, Step, call, class_labels, register_objective, unwrap

if TYPE_CHECKING:
    from caekit.models.vae import ConvVAE


@register_objective("elbo")
class ELBO(Objective):
    """Negative evidence lower bound, -E_q[log p(x|z)] + beta * KL(q(z|x) || p(z)), in nats per image.

    ``warmup_steps`` ramps the KL weight linearly from 0 to ``beta`` over that many training steps (the engine does
    not tell objectives the epoch; steps per epoch = ceil(train images / batch size)). Validation reports the true
    bound (beta = 1) as ``loss``/``elbo``, plus ``rec`` and ``kl``. ``binarise``: none, threshold or dynamic;
    evaluation binarises dynamic data with a fixed seed. ``samples`` k > 1 trains on the importance-weighted bound
    instead (IWAE, Burda et al. 2016: log of the mean of k importance weights; k = 1 is the ELBO), which validation
    then reports as ``iwae`` beside the ELBO.
    """

    def __init__(
        self, beta: float = 1.0, warmup_steps: int = 0, binarise: str = "none", seed: int = 1234, samples: int = 1
    ) -> None:
        if binarise not in BINARISE:
            raise ConfigError(f"unknown binarise '{binarise}'; choose one of: {', '.join(BINARISE)}")
        if beta < 0:
            raise ConfigError(f"beta must be >= 0, got {beta}")
        if samples < 1:
            raise ConfigError(f"samples is the number of importance samples, at least 1, got {samples}")
        if samples > 1 and (beta != 1 or warmup_steps):
            raise ConfigError("the importance-weighted bound (samples > 1) has no KL weight: leave beta at 1, warmup_steps at 0")
        self.samples = samples
        self.beta, self.warmup_steps, self.binarise, self.seed = beta, warmup_steps, binarise, seed
        self.steps = 0
        self.samples_per_epoch: list[Tensor] = []
        self._trained = False

    def kl_weight(self) -> float:
        if self.warmup_steps <= 0:
            return self.beta
        return self.beta * min(1.0, self.steps / self.warmup_steps)

    def terms(
        self, model: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Per-image reconstruction NLL and KL, both in nats."""
        x = binarise(batch["image"], self.binarise, generator)
        return call(model, _vae_terms, x, class_labels(unwrap(model), batch))

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        if self.samples > 1:
            x = binarise(batch["image"], self.binarise)
            bound = call(model, _iwae, x, class_labels(unwrap(model), batch), self.samples, None)
            return -bound.mean(), {"iwae": bound.mean().detach()}
        rec, kl = self.terms(model, batch)
        weight = self.kl_weight()
        return (rec + weight * kl).mean(), {
            "rec": rec.mean().detach(),
            "kl": kl.mean().detach(),
            "beta": torch.tensor(weight, device=rec.device),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def train_step(self, model: nn.Module, batch: dict[str, Tensor], step: Step) -> dict[str, Tensor]:
        metrics = super().train_step(model, batch, step)
        self.steps += 1
        self._trained = True
        return metrics

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if self._trained:  # the first validation batch after an epoch of training: keep a sample grid for pictures
            self._trained = False
            net = cast("ConvVAE", unwrap(model))
            self.samples_per_epoch.append(net.sample(16, generator=seeded(self.seed)).cpu())
        seed = self.seed + int(batch["image"].double().sum().item() * 1000) % 2**31
        rec, kl = self.terms(model, batch, seeded(seed, batch["image"].device))
        values = {"loss": rec + kl, "elbo": -(rec + kl), "rec": rec, "kl": kl}
        if self.samples > 1:
            generator = seeded(seed, batch["image"].device)
            x = binarise(batch["image"], self.binarise, generator)
            bound = call(model, _iwae, x, class_labels(unwrap(model), batch), self.samples, generator)
            values |= {"loss": -bound, "iwae": bound}
        return values

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path, draw: Painter) -> list[Path]:
        net = cast("ConvVAE", unwrap(model))
        labels = torch.arange(len(images), device=images.device) % net.num_classes if net.num_classes else None
        paths = [
            draw.reconstructions(images, net(binarise(images, self.binarise), labels), folder / "reconstructions.png"),
            draw.sample_grid(net.sample(64, generator=seeded(self.seed)), folder / "prior_samples.png", "samples from the prior"),
        ]
        if not net.num_classes and len(images) >= 2:
            paths.append(draw.interpolation(net, images[0:1], images[1:2], folder / "interpolation.png"))
        if net.latent_dim == 2 and not net.num_classes:
            paths.append(draw.manifold(net, folder / "manifold.png"))
        if self.samples_per_epoch:
            paths.append(draw.epoch_rows(self.samples_per_epoch, folder / "samples_per_epoch.png"))
        return paths


def _vae_terms(net: ConvVAE, x: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
    from caekit.models.vae import kl_standard_normal

    mean, logvar = net.posterior(x, labels)
    z = net.reparameterise(mean, logvar)
    return -net.log_likelihood(net.decode_raw(z, labels), x), kl_standard_normal(mean, logvar)


def _iwae(net: ConvVAE, x: Tensor, labels: Tensor | None, k: int, generator: torch.Generator | None) -> Tensor:
    from caekit.models.vae import importance_log_weights, iwae_bound

    return iwae_bound(importance_log_weights(net, x, labels, k, generator))
