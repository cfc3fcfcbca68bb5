"""Stacked autoencoders trained greedily, one stage at a time, then fine-tuned end to end.

A ``StackedAutoencoder`` holds every stage from the start (encoder k maps the code of stage k-1 to code k,
decoder k maps it back), so every stage's run folder stores the same architecture: stage k loads stage k-1's
checkpoint (``init``), freezes everything but stage k (``train_stage``) and learns to reconstruct the frozen
code of stage k-1. With ``train_stage=None`` the whole stack is an ordinary autoencoder (image -> image),
fine-tuned with the ``reconstruct`` objective. Stages are fully connected (``fc``) or convolutional (``conv``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from caekit.errors import ConfigError
from caekit.layers import ConvTranspose2d, activation
from caekit.models.cae import EncoderOutput
from caekit.models.registry import register_model
from caekit.models.weights import load_weights
from caekit.spec import as_shape


def _activation_of(stage: dict[str, Any]) -> str:
    """A stage's activation: as given, else sigmoid for fc and relu for conv."""
    return stage.get("activation", "sigmoid" if stage.get("type", "fc") == "fc" else "relu")


def takes_unit_input(stages: list[dict[str, Any]], k: int) -> bool:
    """Whether stage ``k`` (from 0) takes values in [0, 1]: the image, or the code of a sigmoid stage."""
    return k == 0 or _activation_of(stages[k - 1]) == "sigmoid"


def _stage_modules(
    kind: str, in_shape: tuple[int, ...], stage: dict[str, Any], out_activation: str
) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    """Encoder, decoder and code shape of one stage."""
    act = _activation_of(stage)
    if kind == "fc":
        features, units = math.prod(in_shape), int(stage["units"])
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(features, units), activation(act))
        decoder = nn.Sequential(nn.Linear(units, features), activation(out_activation), nn.Unflatten(1, in_shape))
        return encoder, decoder, (units,)
    if kind == "conv":
        if len(in_shape) != 3:
            raise ConfigError("a conv stage cannot follow an fc stage (its input must be C x H x W)")
        c, h, w = in_shape
        filters, kernel, stride = int(stage["filters"]), int(stage.get("kernel", 3)), int(stage.get("stride", 2))
        padding = int(stage.get("padding", kernel // 2))
        conv = nn.Conv2d(c, filters, kernel, stride, padding)
        oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
        if oh < 1 or ow < 1:
            raise ConfigError(f"conv stage {filters}@{kernel}x{kernel}/{stride} does not fit an input of {h}x{w}")
        out_pad = (h - ((oh - 1) * stride - 2 * padding + kernel), w - ((ow - 1) * stride - 2 * padding + kernel))
        if not all(0 <= p < stride for p in out_pad):
            raise ConfigError(f"conv stage {filters}@{kernel}x{kernel}/{stride} cannot be mirrored back to {h}x{w}")
        deconv = ConvTranspose2d(filters, c, kernel, stride, padding, output_padding=out_pad)
        bn = [nn.BatchNorm2d(filters)] if stage.get("batch_norm", False) else []
        return nn.Sequential(conv, *bn, activation(act)), nn.Sequential(deconv, activation(out_activation)), (filters, oh, ow)
    raise ConfigError(f"unknown stage type '{kind}'; choose fc or conv")


class StackedEncoder(nn.Module):
    """The stacked encoders; returns an ``EncoderOutput`` like every caekit encoder."""

    def __init__(self, stages: nn.ModuleList) -> None:
        super().__init__()
        self.stages = stages

    def forward(self, x: Tensor, keep: bool = True, upto: int | None = None) -> EncoderOutput:
        for stage in list(self.stages)[:upto]:
            x = stage(x)
        return EncoderOutput(x)

    def feature_maps(self, x: Tensor) -> list[tuple[str, Tensor]]:
        maps = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if x.dim() == 4:
                maps.append((f"stage{i + 1}", x))
        return maps


class StackedAutoencoder(nn.Module):
    """Encoders ``enc_1 .. enc_n`` and decoders ``dec_1 .. dec_n``; ``train_stage`` selects greedy training."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        stages: list[dict[str, Any]],
        train_stage: int | None = None,
        output_activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        if not stages:
            raise ConfigError("a stacked autoencoder needs at least one stage")
        if train_stage is not None and not 0 <= train_stage < len(stages):
            raise ConfigError(f"train_stage {train_stage} is outside the {len(stages)} stages (count from 0)")
        self.input_shape = tuple(int(v) for v in input_shape)
        self.stage_specs = [dict(s) for s in stages]
        self.train_stage = train_stage
        encoders, decoders, shapes = nn.ModuleList(), nn.ModuleList(), [self.input_shape]
        for i, stage in enumerate(stages):
            # each decoder ends in the activation that produced its target: the image's, or the previous code's
            out_act = output_activation if i == 0 else _activation_of(stages[i - 1])
            enc, dec, shape = _stage_modules(stage.get("type", "fc"), shapes[-1], stage, out_act)
            encoders.append(enc)
            decoders.append(dec)
            shapes.append(shape)
        self.encoder = StackedEncoder(encoders)
        self.decoders = decoders
        self.shapes = shapes
        if train_stage is not None:
            for i in range(len(stages)):
                for p in [*encoders[i].parameters(), *decoders[i].parameters()]:
                    p.requires_grad_(i == train_stage)

    @property
    def code_size(self) -> int:
        return math.prod(self.shapes[-1])

    def frozen_stages(self) -> list[int]:
        return [] if self.train_stage is None else [i for i in range(len(self.decoders)) if i != self.train_stage]

    def train(self, mode: bool = True) -> StackedAutoencoder:
        """Frozen stages stay in eval mode (their batch-norm statistics do not drift)."""
        super().train(mode)
        for i in self.frozen_stages():
            self.encoder.stages[i].eval()
            self.decoders[i].eval()
        return self

    def encode(self, x: Tensor) -> Tensor:
        """Flat codes of the whole stack, one row per image."""
        return self.encoder(x).code.flatten(1)

    def stage_target(self, x: Tensor) -> Tensor:
        """The frozen input of the stage being trained (the image for stage 0)."""
        with torch.no_grad():
            return self.encoder(x, upto=self.train_stage).code

    def unfreeze(self) -> StackedAutoencoder:
        """Every stage trainable again (supervised fine-tuning of the whole stack after greedy training)."""
        self.train_stage = None
        self.requires_grad_(True)
        return self

    def stage_forward(self, target: Tensor) -> Tensor:
        """Stage ``train_stage`` reconstructing its (frozen) input."""
        k = self.train_stage
        assert k is not None
        return self.decoders[k](self.encoder.stages[k](target))

    def decode(self, code: Tensor) -> Tensor:
        for decoder in reversed(self.decoders):
            code = decoder(code)
        return code

    def forward(self, x: Tensor) -> Tensor:
        """Image -> whole stack -> image (what fine-tuning trains and ``reconstruct`` uses)."""
        return self.decode(self.encoder(x).code)


@register_model("stacked")
def stacked(
    input_shape: tuple[int, int, int] = (1, 28, 28),
    stages: list[dict[str, Any]] | None = None,
    train_stage: int | None = None,
    init: str | None = None,
    output_activation: str = "sigmoid",
) -> StackedAutoencoder:
    """Greedy layer-wise stacked autoencoder (fc/conv stages); train_stage k trains stage k on frozen codes."""
    default = [{"type": "fc", "units": 256}, {"type": "fc", "units": 64}]
    model = StackedAutoencoder(as_shape(input_shape), stages or default, train_stage, output_activation)
    if init:  # the greedy hand-over: a run folder or checkpoint of this very architecture
        load_weights(model, init, "exact")
    return model


def one_hot_patterns(n: int = 8) -> Tensor:
    """The 8-3-8 encoder's inputs: n one-hot patterns as uint8 images [n, 1, 1, n]."""
    return (torch.eye(n) * 255).to(torch.uint8).view(n, 1, 1, n)
