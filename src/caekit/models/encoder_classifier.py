"""Classifiers on an autoencoder's encoder: the encoder plus a head ("CAE(encode) + FC").

``encoder_classifier`` puts a linear or small MLP head on the flat codes of an autoencoder (a trained run folder,
a .safetensors checkpoint, or a fresh model of the same architecture for the from-scratch control), in one of three
modes: ``linear`` (frozen encoder, linear probe), ``mlp`` (frozen encoder, small MLP) or ``finetune`` (everything
trains; the ``classify`` objective can give the encoder a lower learning rate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from caekit.errors import CheckpointError, ConfigError
from caekit.models.backbone_ae import BackboneAutoencoder
from caekit.models.cae import ConvAutoencoder
from caekit.models.registry import MODELS, create_model, register_model
from caekit.models.stacked import StackedAutoencoder
from caekit.models.weights import load_trained

MODES = ("linear", "mlp", "finetune")
Shape = tuple[int, int, int]


class EncoderClassifier(nn.Module):
    """``autoencoder.encode(x)`` -> head -> logits. A frozen encoder has no trainable parameters and stays in eval mode."""

    def __init__(
        self,
        autoencoder: nn.Module,
        num_classes: int,
        input_shape: Shape,
        mode: str = "finetune",
        head: str | None = None,
        hidden: int = 256,
        dropout: float = 0.5,
        code_norm: bool = True,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"unknown classifier mode '{mode}'; choose one of: {', '.join(MODES)}")
        if not hasattr(autoencoder, "encode"):
            raise ConfigError(f"{type(autoencoder).__name__} has no encode(); it cannot be the encoder of a classifier")
        head = head or ("linear" if mode == "linear" else "mlp")
        if head not in ("linear", "mlp"):
            raise ConfigError(f"unknown head '{head}'; choose linear or mlp")
        self.mode, self.head_kind, self.input_shape = mode, head, tuple(input_shape)
        _drop_decoder(autoencoder)
        if mode == "finetune" and isinstance(autoencoder, StackedAutoencoder):
            autoencoder.unfreeze()  # a greedy stage's run keeps the stages below it frozen
        self.encoder = autoencoder
        was_training = autoencoder.training
        # the autoencoder's encode() (checked above) is typed by torch as an unknown attribute: Tensor | Module
        with torch.no_grad():
            code_size = autoencoder.eval().encode(torch.zeros(2, *input_shape)).shape[1]  # type: ignore[operator]
        autoencoder.train(was_training)
        self.code_size = int(code_size)
        # A reconstruction-trained code is far from zero-mean, unit-scale (MNIST cae28: mean ~7, std ~4, 100x a
        # fresh encoder's), which stalls a freshly initialised head; a parameter-free batch norm puts every code
        # unit on one scale first, as linear-probe protocols do. The from-scratch control gets the same head.
        norm: list[nn.Module] = [nn.BatchNorm1d(self.code_size, affine=False)] if code_norm else []
        if head == "linear":
            layers: list[nn.Module] = [nn.Linear(self.code_size, num_classes)]
        else:
            layers = [
                nn.Linear(self.code_size, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            ]
        self.head: nn.Module = nn.Sequential(*norm, *layers)
        self.frozen = mode in ("linear", "mlp")
        if self.frozen:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> EncoderClassifier:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # batch-norm statistics of a frozen encoder must not drift either
        return self

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder.encode(x)  # type: ignore[operator]

    def forward(self, x: Tensor) -> Tensor:
        if self.frozen:
            with torch.no_grad():
                codes = self.encoder.encode(x)  # type: ignore[operator]
            return self.head(codes.float())
        return self.head(self.encoder.encode(x))  # type: ignore[operator]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group, so the encoder can get its own learning rate."""
        groups = {
            "encoder": [p for p in self.encoder.parameters() if p.requires_grad],
            "head": [p for p in self.head.parameters() if p.requires_grad],
        }
        return {k: v for k, v in groups.items() if v}


def _drop_decoder(autoencoder: nn.Module) -> None:
    """Drop the decoder of autoencoders whose ``encode`` does not use it (it would only sit in checkpoints)."""
    if isinstance(autoencoder, (ConvAutoencoder, BackboneAutoencoder)):
        autoencoder.decoder = None  # type: ignore[assignment]
        if isinstance(autoencoder, ConvAutoencoder) and autoencoder.bottleneck is not None:
            autoencoder.bottleneck.decode = None  # type: ignore[assignment]
    if isinstance(autoencoder, StackedAutoencoder):
        autoencoder.decoders = nn.ModuleList()


def _model_spec(autoencoder: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(autoencoder, str):
        return autoencoder, {}
    if not isinstance(autoencoder, dict) or "name" not in autoencoder:
        raise ConfigError("autoencoder must be a model name or a mapping {name: ..., args: {...}}")
    return autoencoder["name"], dict(autoencoder.get("args") or {})


def build_autoencoder(
    autoencoder: str | dict[str, Any] = "cae28", pretrained: str | Path | None = None, input_shape: Shape | None = None
) -> tuple[nn.Module, Shape]:
    """The autoencoder a classifier starts from: trained (``pretrained`` run folder or checkpoint) or freshly initialised."""
    shape: Shape | None
    if pretrained is not None:
        if not Path(pretrained).exists():
            raise CheckpointError(f"pretrained autoencoder '{pretrained}' does not exist (give a run folder or .safetensors)")
        model, meta = load_trained(pretrained)
        shape = cast(Shape, tuple(meta["image_shape"]))
        if input_shape is not None and tuple(input_shape) != shape:
            raise ConfigError(
                f"the pretrained autoencoder takes {'x'.join(map(str, shape))} images, the data are "
                f"{'x'.join(map(str, input_shape))}; set data.image_size/channels to match"
            )
        return model.train(), shape
    name, args = _model_spec(autoencoder)
    if input_shape is not None and "input_shape" in MODELS.parameters(name):
        args.setdefault("input_shape", list(input_shape))
    model = create_model(name, **args)
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is None:
        raise ConfigError(f"cannot tell the input shape of '{name}'; give input_shape")
    return model, cast(Shape, tuple(shape))


@register_model("encoder_classifier")
def encoder_classifier(
    autoencoder: str | dict[str, Any] = "cae28",
    pretrained: str | None = None,
    num_classes: int = 10,
    mode: str = "finetune",
    head: str | None = None,
    hidden: int = 256,
    dropout: float = 0.5,
    code_norm: bool = True,
    input_shape: Shape | None = None,
) -> EncoderClassifier:
    """Encoder + FC head (modes: linear probe, frozen MLP, finetune) on a trained or fresh autoencoder."""
    model, shape = build_autoencoder(autoencoder, pretrained, input_shape)
    return EncoderClassifier(model, num_classes, shape, mode, head, hidden, dropout, code_norm)


__all__ = ["MODES", "EncoderClassifier", "build_autoencoder", "encoder_classifier"]
