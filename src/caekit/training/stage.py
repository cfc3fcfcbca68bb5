"""``stage``: greedy layer-wise training of one stage of a stacked autoencoder on the frozen codes below it, optionally
from a corrupted copy of them (a stacked denoising autoencoder, Vincent et al. 2010)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from caekit.data.noise import OnTheFly
from caekit.errors import ConfigError
from caekit.models.stacked import takes_unit_input
from caekit.training.objectives import Objective, Painter, call, reconstruction_loss, register_objective, unwrap

if TYPE_CHECKING:
    from caekit.models.stacked import StackedAutoencoder


@register_objective("stage")
class GreedyStage(Objective):
    """Train stage ``train_stage`` of a ``StackedAutoencoder`` to reconstruct its frozen input (the codes below).

    With ``noise`` (gaussian, salt_pepper or mask, at ``level``) the stage sees a corrupted copy of its input and
    reconstructs the clean one: the stacked denoising autoencoder's criterion. Validation corrupts with a fixed seed.
    """

    def __init__(self, loss: str = "mse", noise: str | None = None, level: float | list[float] = 0.25, seed: int = 1234) -> None:
        reconstruction_loss(loss, torch.zeros(1), torch.zeros(1))
        self.loss_name = loss
        self.noise = OnTheFly(noise, level, seed) if noise else None

    def check(self, stages: list[dict[str, Any]], k: int) -> None:
        """Refuse, in one line, a loss or noise that needs inputs in [0, 1] for a stage whose input is a relu code."""
        if takes_unit_input(stages, k):
            return
        if self.loss_name == "bce":
            raise ConfigError(f"loss bce needs targets in [0, 1], but stage {k + 1}'s input is not a sigmoid code; use loss: mse")
        if self.noise is not None and self.noise.corruption.kind != "mask":
            raise ConfigError(
                f"{self.noise.corruption.kind} noise clips to [0, 1], but stage {k + 1}'s input is not a sigmoid code; "
                "use noise: mask there"
            )

    def _pair(self, model: nn.Module, x: Tensor, fixed: bool = False) -> tuple[Tensor, Tensor]:
        net = cast("StackedAutoencoder", unwrap(model))
        k = getattr(net, "train_stage", None)
        if k is None:
            raise ConfigError("objective 'stage' needs a stacked model with model.args.train_stage set")
        self.check(net.stage_specs, k)
        return call(model, _stage_pair, x, self.noise, fixed)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        output, target = self._pair(model, batch["image"])
        return reconstruction_loss(self.loss_name, output, target), {}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        output, target = self._pair(model, batch["image"], fixed=True)
        return {"loss": reconstruction_loss(self.loss_name, output, target, "none").flatten(1).mean(1)}

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path, draw: Painter) -> list[Path]:
        """The image as seen through this stage: encode to stage k, reconstruct it, decode down to pixels."""
        net = cast("StackedAutoencoder", unwrap(model))
        k = net.train_stage
        code = net.stage_forward(net.stage_target(images))
        assert k is not None  # stage_forward asserts it too
        for decoder in reversed(list(net.decoders)[:k]):
            code = decoder(code)
        return [draw.reconstructions(images, code, folder / "reconstructions.png", title=f"through stage {k + 1}")]


def _stage_pair(net: StackedAutoencoder, x: Tensor, noise: OnTheFly | None, fixed: bool) -> tuple[Tensor, Tensor]:
    target = net.stage_target(x)
    seen = target if noise is None else noise.fixed(target) if fixed else noise(target)
    return net.stage_forward(seen), target
