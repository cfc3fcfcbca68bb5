"""Supervised objectives: ``classify`` (cross-entropy) for encoder classifiers and the classic CNN baselines.

Imbalance options: ``class_weights`` ("balanced": n / (classes * n_c), or explicit weights) weight the loss;
``balanced_sampling`` draws training batches with probability 1 / n_c per image, so every class is seen about
equally often. Fine-tuning: ``encoder_lr`` gives the encoder parameters of an ``EncoderClassifier`` their own
learning rate (the head keeps the run's), as a torch parameter group of the one optimiser; ``l2_sp`` (Li et al.
2018, "Explicit inductive bias for transfer learning") replaces the encoder's weight decay by a pull towards its
weights at the start of training, so regularisation keeps the pre-trained features instead of shrinking them to zero.
``layer_decay`` (BEiT's layer-wise learning-rate decay) scales the rate of the encoder's k-th layer from the top by
``layer_decay ** k``, so the early, general layers move least; ``linear_probe_epochs`` holds the encoder still for
that many epochs while the head learns (LP-FT, Kumar et al. 2022), then trains everything (with ``train.warmup_epochs``
the encoder warms up again when it starts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from caekit.data.imageset import ImageSet
from caekit.errors import ConfigError
from caekit.training.objectives import Objective, register_objective, unwrap

if TYPE_CHECKING:
    from caekit.models.encoder_classifier import EncoderClassifier


def balanced_class_weights(counts: Sequence[int]) -> Tensor:
    """scikit-learn's 'balanced' weights, n / (k * n_c), over the k classes present; absent classes get 0."""
    counts_t = torch.as_tensor(counts, dtype=torch.float64)
    present = counts_t > 0
    weights = torch.zeros_like(counts_t)
    weights[present] = counts_t.sum() / (present.sum() * counts_t[present])
    return weights.float()


def balanced_sample_weights(labels: Tensor, num_classes: int) -> Tensor:
    """Per-image sampling weight 1 / (size of its class): each class is drawn equally often."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    return 1.0 / counts[labels]


def layer_depths(encoder: nn.Module) -> list[list[nn.Parameter]]:
    """The encoder's trainable parameters by layer, first layer first: each convolution or linear layer starts a
    layer; a normalisation layer's parameters belong to the layer before it."""
    layers: list[list[nn.Parameter]] = []
    for module in encoder.modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) or not layers:
            layers.append([])
        layers[-1].extend(own)
    return layers


@register_objective("classify")
class Classify(Objective):
    """Cross-entropy on ``label``; validation reports loss and accuracy per image."""

    def __init__(
        self,
        class_weights: str | list[float] | None = None,
        balanced_sampling: bool = False,
        encoder_lr: float | None = None,
        l2_sp: float | None = None,
        label_smoothing: float = 0.0,
        monitor: str = "accuracy",
        layer_decay: float | None = None,
        linear_probe_epochs: int = 0,
    ) -> None:
        if isinstance(class_weights, str) and class_weights != "balanced":
            raise ConfigError(f"class_weights is 'balanced' or a list of numbers, not '{class_weights}'")
        if monitor not in ("accuracy", "loss"):
            raise ConfigError(f"monitor is accuracy or loss, not '{monitor}'")
        if encoder_lr is not None and encoder_lr <= 0:
            raise ConfigError("encoder_lr must be positive (freeze the encoder with mode: linear or mlp instead)")
        if l2_sp is not None and l2_sp < 0:
            raise ConfigError("l2_sp must be zero or positive")
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ConfigError(f"layer_decay scales each lower layer's rate; it lies in (0, 1], got {layer_decay}")
        if linear_probe_epochs < 0:
            raise ConfigError(f"linear_probe_epochs must be zero or positive, got {linear_probe_epochs}")
        if not 0 <= label_smoothing < 1:
            raise ConfigError(f"label_smoothing lies in [0, 1), got {label_smoothing}")
        self.layer_decay, self.linear_probe_epochs = layer_decay, linear_probe_epochs
        self.class_weights = class_weights
        self.balanced_sampling = balanced_sampling
        self.encoder_lr = encoder_lr
        self.l2_sp = l2_sp
        self._anchors: list[tuple[Tensor, Tensor]] = []
        self.label_smoothing = label_smoothing
        self.monitor = f"val_{monitor}"
        self.monitor_mode = "max" if monitor == "accuracy" else "min"
        # Accuracy on a small validation set moves in coarse steps (1 % on 100 images): without a tie-break the
        # first, often under-trained, epoch to reach the top value would be kept and would stop the run early.
        self.tie_break = "val_loss" if monitor == "accuracy" else None
        self._weights: Tensor | None = (
            torch.tensor(class_weights, dtype=torch.float32) if isinstance(class_weights, (list, tuple)) else None
        )

    def sample_weights(self, data: ImageSet) -> Tensor | None:
        # The engine calls this with the training set before the first epoch: the one place an objective sees the
        # class counts, so the 'balanced' loss weights are computed here too.
        if self.class_weights == "balanced":
            self._weights = balanced_class_weights(data.class_counts())
        elif self._weights is not None and len(self._weights) != len(data.classes):
            raise ConfigError(f"class_weights has {len(self._weights)} entries for {len(data.classes)} classes")
        return balanced_sample_weights(data.labels, len(data.classes)) if self.balanced_sampling else None

    def param_groups(self, model: nn.Module) -> dict[str, Iterable[Any]]:
        # One optimiser whose torch parameter groups carry their own settings: the head's group first, so the
        # engine's logged ``lr`` is the head's. ``lr_scale`` and ``hold_epochs`` are read by the engine's schedule.
        inner = unwrap(model)
        if self.encoder_lr is None and self.l2_sp is None and self.layer_decay is None and not self.linear_probe_epochs:
            return super().param_groups(model)
        if not hasattr(inner, "parameter_groups"):
            raise ConfigError(
                "encoder_lr, l2_sp, layer_decay and linear_probe_epochs need an encoder classifier; "
                f"{type(inner).__name__} has no encoder"
            )
        groups = cast("EncoderClassifier", inner).parameter_groups()
        torch_groups: list[dict[str, Any]] = [{"params": groups["head"]}] if "head" in groups else []
        if "encoder" in groups:
            settings: dict[str, Any] = {"hold_epochs": self.linear_probe_epochs}
            if self.encoder_lr is not None:
                settings["lr"] = self.encoder_lr
            if self.l2_sp is not None:
                # The engine builds its optimiser before a resume loads the checkpoint, so these are the weights
                # the classifier started from (the pre-trained encoder), also when a run is resumed.
                settings["weight_decay"] = 0.0
                self._anchors = [(p, p.detach().clone()) for p in groups["encoder"]]
            layers = layer_depths(cast(nn.Module, inner.encoder)) if self.layer_decay is not None else [groups["encoder"]]
            for k, params in enumerate(reversed(layers), start=1 if self.layer_decay is not None else 0):
                torch_groups.append({"params": params, **settings, "lr_scale": (self.layer_decay or 1.0) ** k})
        return {"model": torch_groups}

    def _criterion_weights(self, device: torch.device) -> Tensor | None:
        if self._weights is None:
            return None
        if self._weights.device != device:
            self._weights = self._weights.to(device)
        return self._weights

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits = model(batch["image"]).float()
        loss = F.cross_entropy(
            logits, batch["label"], weight=self._criterion_weights(logits.device), label_smoothing=self.label_smoothing
        )
        accuracy = (logits.argmax(1) == batch["label"]).float().mean()
        metrics = {"accuracy": accuracy.detach()}
        if self._anchors:
            assert self.l2_sp is not None  # the anchors are only taken for l2_sp
            drift = torch.stack([(p - start).pow(2).sum() for p, start in self._anchors]).sum()
            loss = loss + 0.5 * self.l2_sp * drift
            metrics["l2_sp_drift"] = drift.detach()
        return loss, metrics

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        logits = model(batch["image"]).float()
        loss = F.cross_entropy(logits, batch["label"], reduction="none")
        return {"loss": loss, "accuracy": (logits.argmax(1) == batch["label"]).float()}


__all__ = ["Classify", "balanced_class_weights", "balanced_sample_weights", "layer_depths"]
