"""``stage``: greedy layer-wise training of one stage of a stacked autoencoder on the frozen codes below it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from caekit.errors import ConfigError
from caekit.training.objectives import Objective, Painter, call, reconstruction_loss, register_objective, unwrap

if TYPE_CHECKING:
    from caekit.models.stacked import StackedAutoencoder


@register_objective("stage")
class GreedyStage(Objective):
    """Train stage ``train_stage`` of a ``StackedAutoencoder`` to reconstruct its frozen input (the codes below)."""

    def __init__(self, loss: str = "mse") -> None:
        reconstruction_loss(loss, torch.zeros(1), torch.zeros(1))
        self.loss_name = loss

    def _pair(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        if getattr(unwrap(model), "train_stage", None) is None:
            raise ConfigError("objective 'stage' needs a stacked model with model.args.train_stage set")
        return call(model, _stage_pair, x)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        output, target = self._pair(model, batch["image"])
        return reconstruction_loss(self.loss_name, output, target), {}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        output, target = self._pair(model, batch["image"])
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


def _stage_pair(net: StackedAutoencoder, x: Tensor) -> tuple[Tensor, Tensor]:
    target = net.stage_target(x)
    return net.stage_forward(target), target
