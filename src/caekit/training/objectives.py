"""Objectives: the small pieces that tell the one training engine what a step means for a model.

An objective turns a batch (a dict of device tensors; ``image`` already float in [0, 1]) into a loss. The engine
owns everything else: devices, optimisers, AMP, DDP, checkpoints, logging. Objectives that need several
optimisers (a GAN) override ``param_groups`` and ``train_step``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from caekit.data.imageset import ImageSet
from caekit.errors import ConfigError
from caekit.metrics import psnr
from caekit.registry import Registry

OBJECTIVES: Registry = Registry("objective")
register_objective = OBJECTIVES.register
Step = Callable[[str, Tensor], None]


class Painter(Protocol):
    """The pictures an objective can ask for; the run assembly passes ``caekit.viz.painter``, which has them all."""

    def reconstructions(self, originals: Tensor, outputs: Tensor, path: Path, title: str | None = None) -> Path: ...
    def image_rows(self, rows: list[tuple[str, Tensor]], path: Path, title: str | None = None) -> Path: ...
    def sample_grid(self, images: Tensor, path: Path, title: str | None = None, columns: int = 8) -> Path: ...
    def epoch_rows(self, samples: list[Tensor], path: Path, max_rows: int = 12) -> Path: ...
    def interpolation(self, model: nn.Module, first: Tensor, second: Tensor, path: Path, steps: int = 10) -> Path: ...
    def manifold(self, model: nn.Module, path: Path, n: int = 15) -> Path: ...
    def gan_curves(self, history: list[dict[str, float]], path: Path, title: str | None = None) -> Path: ...
    def segmentation_overlays(
        self, images: Tensor, predictions: Tensor, path: Path, classes: list[str], truth: Tensor | None = None
    ) -> Path: ...
    def superres_rows(
        self, low: Tensor, bicubic: Tensor, outputs: Tensor, originals: Tensor | None, path: Path, title: str | None = None
    ) -> Path: ...


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel or torch.compile wrapper."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod  # type: ignore[assignment]
    return model


class PassThrough(nn.Module):
    """What DistributedDataParallel wraps: calls the model, or runs ``through(model, ...)`` inside DDP's forward.

    DDP synchronises the gradients of parameters that a call of its ``forward`` used. Objectives that reach into a
    model's parts (a GAN's generator and discriminator, a VAE's posterior and decoder) go through ``call`` below,
    so their gradients are all-reduced like those of a plain ``model(x)``.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any, through: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        if through is not None:
            return through(self.module, *args, **kwargs)
        return self.module(*args, **kwargs)


def call(model: nn.Module, function: Callable[..., Any], *args: Any) -> Any:
    """``function(inner_model, *args)``, run inside the DDP wrapper's forward when there is one."""
    if isinstance(getattr(model, "_orig_mod", model), nn.parallel.DistributedDataParallel):  # also under torch.compile
        return model(*args, through=function)
    return function(unwrap(model), *args)


def class_labels(net: nn.Module, batch: dict[str, Tensor]) -> Tensor | None:
    """The batch's labels for a class-conditional model (one with ``num_classes``), else None."""
    return batch["label"] if getattr(net, "num_classes", 0) else None


def reconstruction_loss(name: str, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """mse (the lecture's 'Euclidean'), l1 or bce, in float32 even under autocast."""
    output, target = output.float(), target.float()
    if name == "mse":
        return F.mse_loss(output, target, reduction=reduction)
    if name == "l1":
        return F.l1_loss(output, target, reduction=reduction)
    if name == "bce":
        with torch.autocast(output.device.type, enabled=False):
            return F.binary_cross_entropy(output.clamp(1e-6, 1 - 1e-6), target, reduction=reduction)
    raise ConfigError(f"unknown loss '{name}'; choose one of: mse, l1, bce")


class Objective:
    """Base objective: one optimiser over all trainable parameters, loss from ``loss``."""

    monitor = "val_loss"  # the validation metric that picks the best checkpoint and drives early stopping
    monitor_mode = "min"
    tie_break: str | None = None  # a second validation metric, lower is better, deciding between equal monitor values
    uses_part_of_model = False  # True when a training step may leave some trainable parameters without gradients

    def rank(self, row: dict[str, float]) -> tuple[float, ...]:
        """Sort key of one epoch's metrics, lower is better: the monitored metric, then the tie-break."""
        if self.monitor not in row:
            return (row["train_loss"],)
        key = ((1.0 if self.monitor_mode == "min" else -1.0) * row[self.monitor],)
        return (*key, row[self.tie_break]) if self.tie_break and self.tie_break in row else key

    def state_dict(self) -> dict[str, Any]:
        """Counters the objective keeps across steps (JSON-able), saved in checkpoints so a resumed run goes on."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def param_groups(self, model: nn.Module) -> dict[str, Iterable[nn.Parameter]]:
        return {"model": [p for p in model.parameters() if p.requires_grad]}

    def sample_weights(self, data: ImageSet) -> Tensor | None:
        """Per-image sampling weights for training batches (None: a plain shuffle)."""
        return None

    def optimizer_defaults(self) -> dict[str, Any]:
        """Optimiser settings this objective prefers where the run's ``optim`` leaves them empty (a GAN's Adam 2e-4,
        beta1 0.5, no weight decay); an explicit ``optim.*`` value always wins."""
        return {}

    def train_step(self, model: nn.Module, batch: dict[str, Tensor], step: Step) -> dict[str, Tensor]:
        loss, metrics = self.loss(model, batch)
        step("model", loss)
        return {"loss": loss.detach(), **metrics}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-image validation values; the engine averages them over the whole split."""
        loss, _ = self.loss(model, batch)
        return {"loss": loss.expand(len(batch["image"]))}

    def pictures(self, model: nn.Module, images: Tensor, folder: Path, draw: Painter) -> list[Path]:
        """Pictures of what the trained model does to a few test images (float [N, C, H, W]), drawn with ``draw``."""
        return []


@register_objective("reconstruct")
class Reconstruct(Objective):
    """Autoencoding: reconstruct the input; validation reports loss, MSE and PSNR per image."""

    def __init__(self, loss: str = "mse") -> None:
        reconstruction_loss(loss, torch.zeros(1), torch.zeros(1))  # fail early on an unknown loss
        self.loss_name = loss

    def inputs(self, batch: dict[str, Tensor]) -> Tensor:
        return batch["image"]

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        output = model(self.inputs(batch))
        return reconstruction_loss(self.loss_name, output, batch["image"]), {}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        target = batch["image"]
        output = model(self.inputs(batch)).float()
        per_image = reconstruction_loss(self.loss_name, output, target, "none").flatten(1).mean(1)
        mse = (output - target).pow(2).flatten(1).mean(1)
        return {"loss": per_image, "mse": mse, "psnr": psnr(output, target)}

    @torch.no_grad()
    def pictures(self, model: nn.Module, images: Tensor, folder: Path, draw: Painter) -> list[Path]:
        outputs = model(self.inputs({"image": images}))
        return [draw.reconstructions(images, outputs, folder / "reconstructions.png")]


# Objectives of the other areas live in their own modules and register themselves when imported.
OBJECTIVE_MODULES = (
    "caekit.training.denoise",
    "caekit.training.masked",
    "caekit.training.stage",
    "caekit.training.vae",
    "caekit.training.gan",
    "caekit.training.supervised",
    "caekit.training.pixelwise",
)


def build_objective(name: str, **args: Any) -> Objective:
    for module in OBJECTIVE_MODULES:
        importlib.import_module(module)
    return OBJECTIVES.build(name, **args)
