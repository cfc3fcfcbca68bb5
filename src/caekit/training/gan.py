"""``gan``: DCGAN training (conditional when the model has classes), two optimisers stepped in ``train_step``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from caekit.data.imageset import ImageSet
from caekit.data.noise import seeded
from caekit.errors import ConfigError
from caekit.runs import RunFolder
from caekit.training.objectives import Objective, Painter, Step, call, class_labels, register_objective, unwrap
from caekit.training.supervised import balanced_sample_weights

if TYPE_CHECKING:
    from caekit.models.gan import DCGAN


@register_objective("gan")
class GAN(Objective):
    """DCGAN training (conditional when the model has classes): ``d_steps`` discriminator updates per generator
    update. ``loss="bce"``: the non-saturating loss, optional one-sided label smoothing (real target 1 - smoothing);
    ``loss="hinge"``: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G maximises D(G(z)) (as in SNGAN).

    ``balanced_sampling`` draws the real batches class-balanced (with replacement), so that a conditional GAN on
    imbalanced data trains the rare classes' conditioning as often as the common ones'.

    Adam 2e-4, beta1 0.5, no weight decay for both networks, unless ``optim.*`` (or these arguments) say otherwise. There is no meaningful validation loss,
    so the last epoch is kept as ``best`` (monitor ``epoch``); validation reports D's mean outputs on real and
    generated images. A fixed-noise sample grid is kept every epoch and drawn after training.
    """

    monitor = "epoch"
    monitor_mode = "max"
    uses_part_of_model = True  # a discriminator step runs the generator without gradients

    def __init__(
        self,
        d_steps: int = 1,
        label_smoothing: float = 0.0,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 0.0,
        loss: str = "bce",
        seed: int = 1234,
        balanced_sampling: bool = False,
    ) -> None:
        if d_steps < 1:
            raise ConfigError(f"d_steps must be >= 1, got {d_steps}")
        if not 0 <= label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing must lie in [0, 0.5), got {label_smoothing}")
        if loss not in ("bce", "hinge"):
            raise ConfigError(f"unknown GAN loss '{loss}'; choose bce or hinge")
        if loss == "hinge" and label_smoothing:
            raise ConfigError("label_smoothing applies to the bce GAN loss only; the hinge loss has no targets to smooth")
        self.d_steps, self.smoothing, self.kind, self.seed = d_steps, label_smoothing, loss, seed
        self.balanced_sampling = balanced_sampling
        self.settings = {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay}
        self.count = 0
        self.samples_per_epoch: list[Tensor] = []
        self._trained = False
        self._last_g = torch.zeros(())

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def sample_weights(self, data: ImageSet) -> Tensor | None:
        return balanced_sample_weights(data.labels, len(data.classes)) if self.balanced_sampling else None

    def param_groups(self, model: nn.Module) -> dict[str, Iterable[nn.Parameter]]:
        net = cast("DCGAN", unwrap(model))
        return {"generator": list(net.generator.parameters()), "discriminator": list(net.discriminator.parameters())}

    def optimizer_defaults(self) -> dict[str, Any]:
        return dict(self.settings)

    def discriminator_loss(self, net: DCGAN, real: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """BCE of D on real (target 1 - smoothing) and generated (target 0) images; real in [-1, 1]."""
        z = net.noise(len(real))
        with torch.no_grad():
            fake = net.generator(z, labels)
        d_real, d_fake = net.discriminator(real, labels).float(), net.discriminator(fake, labels).float()
        if self.kind == "hinge":
            loss = F.relu(1 - d_real) + F.relu(1 + d_fake)
        else:
            loss = F.binary_cross_entropy_with_logits(
                d_real, torch.full_like(d_real, 1 - self.smoothing), reduction="none"
            ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake), reduction="none")
        return loss, torch.sigmoid(d_real), torch.sigmoid(d_fake)

    def generator_loss(self, net: DCGAN, n: int, labels: Tensor | None) -> Tensor:
        """Non-saturating loss -log D(G(z)), or -D(G(z)) for the hinge loss."""
        logits = net.discriminator(net.generator(net.noise(n), labels), labels).float()
        if self.kind == "hinge":
            return -logits.mean()
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def train_step(self, model: nn.Module, batch: dict[str, Tensor], step: Step) -> dict[str, Tensor]:
        real = batch["image"] * 2 - 1
        labels = class_labels(unwrap(model), batch)
        d_loss, d_real, d_fake = call(model, self.discriminator_loss, real, labels)
        d_loss = d_loss.mean()
        step("discriminator", d_loss)
        self.count += 1
        self._trained = True
        if self.count % self.d_steps == 0:
            g_loss = call(model, self.generator_loss, len(real), labels)
            step("generator", g_loss)
            if hasattr(unwrap(model), "update_ema"):
                cast("DCGAN", unwrap(model)).update_ema()
            self._last_g = g_loss.detach()
        g = self._last_g.to(d_loss.device)
        return {
            "loss": d_loss.detach() + g,
            "d_loss": d_loss.detach(),
            "g_loss": g,
            "d_real": d_real.mean().detach(),
            "d_fake": d_fake.mean().detach(),
        }

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        net = cast("DCGAN", unwrap(model))
        if self._trained:
            self._trained = False
            self.samples_per_epoch.append(net.sample(16, generator=seeded(self.seed)).cpu())
        labels = class_labels(net, batch)
        loss, d_real, d_fake = self.discriminator_loss(net, batch["image"] * 2 - 1, labels)
        return {"loss": loss, "d_real": d_real, "d_fake": d_fake}

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path, draw: Painter) -> list[Path]:
        net = cast("DCGAN", unwrap(model))
        paths = [
            draw.sample_grid(
                net.sample(100, generator=seeded(self.seed)),
                folder / "samples.png",
                "generated samples" + (" (one class per column)" if net.num_classes else ""),
                columns=10,
            )
        ]
        if self.samples_per_epoch:
            paths.append(draw.epoch_rows(self.samples_per_epoch, folder / "samples_per_epoch.png"))
        history = RunFolder(folder).read_metrics()
        if history:
            paths.append(draw.gan_curves(history, folder / "gan_curves.png"))
        return paths
