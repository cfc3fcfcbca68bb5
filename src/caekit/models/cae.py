"""The convolutional autoencoder built from a spec, and the encoder contract every family shares."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from caekit.errors import ConfigError
from caekit.layers import ConvTranspose2d, MaxUnpool, activation, conv_block, unpool
from caekit.models.registry import register_model
from caekit.spec import PRESETS, AutoencoderSpec, Layer, Plan, load_spec, parse_spec, plan, preset_summary


@dataclass
class EncoderOutput:
    """What an encoder hands a decoder: the code and, per pool in encoder order, its switches, input and size."""

    code: Tensor
    indices: list[Tensor | None] = field(default_factory=list)
    skips: list[Tensor] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)


class ConvEncoder(nn.Module):
    """Conv and pool stages; returns an ``EncoderOutput`` so SegNet- and U-Net-style decoders can reuse it."""

    def __init__(self, layers: tuple[Layer, ...]) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        self.names = [layer.name for layer in layers]
        for layer in layers:
            if layer.kind == "conv":
                conv = nn.Conv2d(layer.in_shape[0], layer.out_shape[0], layer.kernel, layer.stride, layer.padding)
                self.stages.append(conv_block(conv, layer.out_shape[0], layer.activation, layer.batch_norm))
            elif layer.mode == "max":
                self.stages.append(nn.MaxPool2d(layer.kernel, layer.stride, return_indices=True))
            else:
                self.stages.append(nn.AvgPool2d(layer.kernel, layer.stride))
        self.out_channels = layers[-1].out_shape[0]

    def forward(self, x: Tensor, keep: bool = True) -> EncoderOutput:
        """With ``keep=False`` only the code is computed (no switches or skips are held)."""
        out = EncoderOutput(x)
        for stage in self.stages:
            if isinstance(stage, (nn.MaxPool2d, nn.AvgPool2d)) and keep:
                out.skips.append(x)
                out.sizes.append((x.shape[-2], x.shape[-1]))
            if isinstance(stage, nn.MaxPool2d):
                x, switches = stage(x)
                if keep:
                    out.indices.append(switches)
            else:
                x = stage(x)
                if keep and isinstance(stage, nn.AvgPool2d):
                    out.indices.append(None)
        out.code = x
        return out

    def feature_maps(self, x: Tensor) -> list[tuple[str, Tensor]]:
        """Each stage's output, for pictures."""
        maps = []
        for name, stage in zip(self.names, self.stages):
            x = stage(x)
            x = x[0] if isinstance(x, tuple) else x
            maps.append((name, x))
        return maps


class FCBottleneck(nn.Module):
    """Flatten -> fc to the code -> fc back -> reshape."""

    def __init__(self, encode: Layer, decode: Layer) -> None:
        super().__init__()
        self.feature_shape = encode.in_shape
        features = math.prod(encode.in_shape)
        self.encode = nn.Sequential(nn.Flatten(), nn.Linear(features, encode.out_shape[0]), activation(encode.activation))
        self.decode = nn.Sequential(nn.Linear(encode.out_shape[0], features), activation(decode.activation))

    def forward(self, code: Tensor) -> Tensor:
        return self.decode(code).view(-1, *self.feature_shape)


class ConvDecoder(nn.Module):
    """Unpooling and (transposed) convolution stages that turn an ``EncoderOutput`` back into an image."""

    def __init__(self, layers: tuple[Layer, ...]) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        self.targets: list[tuple[int, int]] = []
        self.pool_of: list[int | None] = []
        for layer in layers:
            cin, cout = layer.in_shape[0], layer.out_shape[0]
            if layer.kind == "unpool":
                self.stages.append(unpool(layer.mode, cin, layer.kernel, layer.stride, layer.output_padding))
            elif layer.kind == "deconv":
                conv: nn.Module = ConvTranspose2d(cin, cout, layer.kernel, layer.stride, layer.padding, layer.output_padding)
                self.stages.append(conv_block(conv, cout, layer.activation, layer.batch_norm))
            else:
                conv = nn.Conv2d(cin, cout, layer.kernel, layer.stride, layer.padding)
                self.stages.append(conv_block(conv, cout, layer.activation, layer.batch_norm))
            self.targets.append(tuple(layer.out_shape[1:]))  # type: ignore[arg-type]
            self.pool_of.append(layer.pool_index)
        self.final_activation = activation(layers[-1].activation) if layers[-1].kind == "unpool" else nn.Identity()

    def forward(self, x: Tensor, encoded: EncoderOutput | None = None) -> Tensor:
        for stage, size, pool in zip(self.stages, self.targets, self.pool_of):
            if isinstance(stage, MaxUnpool):
                if encoded is None or pool is None:
                    raise ValueError("max-unpooling needs the encoder's switches")
                x = stage(x, encoded.indices[pool], size)
            elif isinstance(stage, nn.Sequential):
                x = stage(x)
            else:
                x = stage(x, size)
        return self.final_activation(x)


class ConvAutoencoder(nn.Module):
    """Encoder -> optional FC bottleneck -> decoder, all derived from one ``AutoencoderSpec``."""

    def __init__(self, spec: AutoencoderSpec) -> None:
        super().__init__()
        self.spec = spec
        self.plan: Plan = plan(spec)
        self.encoder = ConvEncoder(self.plan.encoder)
        self.bottleneck = FCBottleneck(*self.plan.bottleneck) if self.plan.bottleneck else None
        self.decoder = ConvDecoder(self.plan.decoder)
        self._needs_switches = any(layer.mode == "max" for layer in self.plan.decoder if layer.kind == "unpool")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.spec.input_shape)  # type: ignore[return-value]

    @property
    def code_size(self) -> int:
        return self.plan.code_size

    def encode(self, x: Tensor) -> Tensor:
        """Flat codes, one row per image."""
        code = self.encoder(x, keep=False).code
        return self.bottleneck.encode(code) if self.bottleneck else code.flatten(1)

    def decode(self, code: Tensor) -> Tensor:
        """Images from flat codes (rows of ``encode``). A decoder that max-unpools needs the switches of the image's
        own encoding, which a code alone does not carry: it refuses."""
        if self._needs_switches:
            raise ConfigError(
                "this decoder max-unpools with the encoder's switches, so a code alone cannot be decoded; "
                "use the whole model, or a CAE with upsample: nearest (or any other kind)"
            )
        if self.bottleneck:
            return self.decoder(self.bottleneck(code))
        return self.decoder(code.view(-1, *self.plan.encoder[-1].out_shape))

    def forward(self, x: Tensor) -> Tensor:
        encoded = self.encoder(x, keep=self._needs_switches)
        code = encoded.code
        if self.bottleneck:
            code = self.bottleneck(self.bottleneck.encode(code))
        return self.decoder(code, encoded)


def _resolve_spec(spec: AutoencoderSpec | dict[str, Any] | str | None, preset: str | None, **overrides: Any) -> AutoencoderSpec:
    if isinstance(spec, dict):
        spec = parse_spec(spec)
    elif spec is None or isinstance(spec, str):
        spec = load_spec(spec or preset or "cae32")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        spec = parse_spec({**spec.model_dump(), **overrides}, f"{spec.name} with {', '.join(overrides)}")
    return spec


@register_model("cae")
def cae(
    spec: AutoencoderSpec | dict[str, Any] | str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    upsample: str | None = None,
    bottleneck: dict[str, Any] | None = None,
    output_activation: str | None = None,
) -> ConvAutoencoder:
    """A CAE from a spec (object, mapping, preset name or file); the keyword arguments override its fields."""
    return ConvAutoencoder(
        _resolve_spec(
            spec, None, input_shape=input_shape, upsample=upsample, bottleneck=bottleneck, output_activation=output_activation
        )
    )


def _preset_builder(preset: str):
    def build(
        input_shape: tuple[int, int, int] | None = None, upsample: str | None = None, bottleneck: dict[str, Any] | None = None
    ) -> ConvAutoencoder:
        return ConvAutoencoder(_resolve_spec(None, preset, input_shape=input_shape, upsample=upsample, bottleneck=bottleneck))

    build.__doc__ = preset_summary(preset)
    return build


for _name in PRESETS:
    register_model(_name)(_preset_builder(_name))

__all__ = ["ConvAutoencoder", "ConvDecoder", "ConvEncoder", "EncoderOutput", "FCBottleneck", "cae"]
