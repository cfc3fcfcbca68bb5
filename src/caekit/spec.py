"""Declarative convolutional autoencoder architectures, their shape arithmetic and the presets.

A spec lists encoder stages (conv, pool), an optional fully connected bottleneck, and a decoder that either
mirrors the encoder or is given stage by stage. ``plan(spec)`` walks it once with the textbook size formulas,
raising a ``SpecError`` that names the layer where sizes do not work out; models are built from the plan.
The same spec reads from YAML/JSON (``load_spec``) or is written in Python.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError

from caekit.errors import ConfigError, SpecError, validation_message
from caekit.yamlio import read_yaml

Activation = Literal["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "identity"]
UpsampleKind = Literal["max", "average", "fixed", "nearest", "bilinear", "bicubic", "transposed"]
UPSAMPLE_KINDS: tuple[str, ...] = UpsampleKind.__args__  # type: ignore[attr-defined]
Shape = tuple[int, int, int]  # channels, height, width


def as_shape(value: Sequence[int]) -> Shape:
    """A (channels, height, width) tuple from any three positive integers (a YAML list, a tuple, a ``torch.Size``)."""
    three = isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == 3
    if not three or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value):
        raise ConfigError(f"a shape is three whole numbers above 0 [channels, height, width], not {repr(value)[:80]}")
    channels, height, width = value
    return int(channels), int(height), int(width)


class _Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Filtering(_Stage):
    """What a convolution and a transposed convolution share (``type`` first, so dumps read naturally)."""

    type: str
    filters: PositiveInt
    kernel: PositiveInt = 3
    stride: PositiveInt = 1
    padding: NonNegativeInt = 0
    activation: Activation = "relu"
    batch_norm: bool = False


class Conv(_Filtering):
    """A convolution; in a decoder it keeps the size (use it for 1x1 channel bottlenecks or refinement)."""

    type: Literal["conv"] = "conv"


class Pool(_Stage):
    type: Literal["pool"] = "pool"
    kind: Literal["max", "average"] = "max"
    size: PositiveInt = 2
    stride: PositiveInt | None = None  # None: equal to size

    @property
    def step(self) -> int:
        return self.stride or self.size


class Deconv(_Filtering):
    """A transposed convolution. ``size`` asks for an output size; output padding is then derived."""

    type: Literal["deconv"] = "deconv"
    output_padding: NonNegativeInt | None = None
    size: PositiveInt | None = None


class Unpool(_Stage):
    """Upsampling by ``scale`` (or to ``size``). ``max`` uses the switches of the matching encoder max pool."""

    type: Literal["unpool"] = "unpool"
    kind: UpsampleKind = "nearest"
    scale: PositiveInt = 2
    size: PositiveInt | None = None


class Bottleneck(_Stage):
    """Flatten, fully connected to ``code_size``, fully connected back, reshape (the lecture's FC encoder/decoder)."""

    code_size: PositiveInt
    activation: Activation = "identity"


EncoderStage = Annotated[Conv | Pool, Field(discriminator="type")]
DecoderStage = Annotated[Deconv | Unpool | Conv, Field(discriminator="type")]


class AutoencoderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    input_shape: tuple[PositiveInt, PositiveInt, PositiveInt] = (3, 32, 32)
    encoder: list[EncoderStage] = Field(min_length=1)
    bottleneck: Bottleneck | None = None
    decoder: Literal["mirror"] | list[DecoderStage] = "mirror"
    upsample: UpsampleKind = "max"
    output_activation: Activation = "sigmoid"


# --------------------------------------------------------------------------------------------- shape math


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """floor((W - F + 2P) / S) + 1."""
    return (size - kernel + 2 * padding) // stride + 1


def deconv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0) -> int:
    """(W - 1) S - 2P + F + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def pool_output_size(size: int, kernel: int, stride: int) -> int:
    return conv_output_size(size, kernel, stride, 0)


# --------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Layer:
    """One resolved layer: every size and hyper-parameter a module builder needs."""

    name: str
    kind: Literal["conv", "pool", "fc", "unpool", "deconv"]
    in_shape: Shape
    out_shape: Shape
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    output_padding: tuple[int, int] = (0, 0)
    activation: str = "identity"
    batch_norm: bool = False
    mode: str = ""  # pool: max|average; unpool: an UpsampleKind
    pool_index: int | None = None  # unpool kind max: which encoder pool's switches it uses

    @property
    def params(self) -> int:
        cin, cout = self.in_shape[0], self.out_shape[0]
        bn = 2 * cout if self.batch_norm else 0
        if self.kind in ("conv", "deconv"):
            return cin * cout * self.kernel**2 + cout + bn
        if self.kind == "unpool" and self.mode == "transposed":
            return cin * cout * self.kernel**2 + cout
        if self.kind == "fc":
            return math.prod(self.in_shape) * math.prod(self.out_shape) + math.prod(self.out_shape)
        return 0

    @property
    def macs(self) -> int:
        """Multiply-adds of one forward pass for one image."""
        cin, cout = self.in_shape[0], self.out_shape[0]
        if self.kind == "conv":
            return math.prod(self.out_shape) * cin * self.kernel**2
        if self.kind == "deconv" or (self.kind == "unpool" and self.mode == "transposed"):
            return math.prod(self.in_shape) * cout * self.kernel**2
        if self.kind == "fc":
            return math.prod(self.in_shape) * math.prod(self.out_shape)
        return 0

    def describe(self) -> tuple[str, str, str]:
        """Filter, stride and pad as the lecture's tables write them."""
        if self.kind in ("conv", "deconv"):
            return f"{self.out_shape[0]}@{self.kernel}x{self.kernel}", str(self.stride), str(self.padding)
        if self.kind == "pool":
            return f"{self.mode} {self.kernel}x{self.kernel}", str(self.stride), "0"
        if self.kind == "unpool":
            return self.mode, str(self.stride) if self.mode in ("max", "transposed") else "-", "-"
        return f"fc {math.prod(self.out_shape)}", "-", "-"


@dataclass(frozen=True)
class Plan:
    spec: AutoencoderSpec
    encoder: tuple[Layer, ...]
    bottleneck: tuple[Layer, ...]
    decoder: tuple[Layer, ...]

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self.encoder + self.bottleneck + self.decoder

    @property
    def feature_shape(self) -> Shape:
        """Shape of the last encoder feature map (before any fully connected bottleneck)."""
        return self.encoder[-1].out_shape

    @property
    def code_size(self) -> int:
        return self.spec.bottleneck.code_size if self.spec.bottleneck else math.prod(self.feature_shape)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def summary(self) -> str:
        """A table like the lecture's: layer, filter, stride, pad, output shape, parameters, multiply-adds."""
        header = ("layer", "filter", "stride", "pad", "output", "params", "mult-adds")
        rows = [("input", "", "", "", _shape_text(self.spec.input_shape), "", "")]
        for layer in self.layers:
            rows.append((layer.name, *layer.describe(), _shape_text(layer.out_shape), f"{layer.params:,}", f"{layer.macs:,}"))
        rows.append(("total", "", "", "", "", f"{self.params:,}", f"{self.macs:,}"))
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) if i < 5 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            for row in [header, *rows]
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(
            f"code size: {self.code_size} ({_shape_text(self.feature_shape)} feature map"
            + (f" -> fc {self.code_size})" if self.spec.bottleneck else ")")
        )
        return "\n".join(lines)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _deconv_padding(
    name: str, size: tuple[int, int], target: tuple[int, int], kernel: int, stride: int, padding: int
) -> tuple[int, int]:
    """Output padding that brings a transposed conv from ``size`` to ``target``, or a SpecError."""
    pads = []
    for have, want in zip(size, target):
        base = deconv_output_size(have, kernel, stride, padding)
        extra = want - base
        if not 0 <= extra < stride:
            raise SpecError(
                f"{name}: a {kernel}x{kernel} transposed conv with stride {stride} and padding {padding} turns "
                f"{have} into {base}..{base + stride - 1}, not {want}"
            )
        pads.append(extra)
    return pads[0], pads[1]


def _conv_layer(name: str, stage: Conv, shape: Shape) -> Layer:
    """A convolution layer of the plan, its output shape checked."""
    _, h, w = shape
    out = [conv_output_size(s, stage.kernel, stage.stride, stage.padding) for s in (h, w)]
    if min(out) < 1:
        raise SpecError(
            f"{name}: a {stage.kernel}x{stage.kernel} kernel with padding {stage.padding} does not fit a {h}x{w} input"
        )
    return Layer(
        name,
        "conv",
        shape,
        (stage.filters, out[0], out[1]),
        stage.kernel,
        stage.stride,
        stage.padding,
        activation=stage.activation,
        batch_norm=stage.batch_norm,
    )


def _deconv_layer(name: str, source: Layer | Deconv, shape: Shape, out_shape: Shape, pad: tuple[int, int]) -> Layer:
    """A transposed convolution of the plan, with the filter settings of ``source`` (a spec stage or the mirrored layer)."""
    return Layer(
        name,
        "deconv",
        shape,
        out_shape,
        source.kernel,
        source.stride,
        source.padding,
        pad,
        activation=source.activation,
        batch_norm=source.batch_norm,
    )


def plan(spec: AutoencoderSpec) -> Plan:
    """Resolve every layer's shapes; raise SpecError naming the layer if the sizes do not work out."""
    shape = cast(Shape, tuple(spec.input_shape))
    encoder: list[Layer] = []
    n_conv = n_pool = 0
    for stage in spec.encoder:
        c, h, w = shape
        if isinstance(stage, Conv):
            n_conv += 1
            layer = _conv_layer(f"conv{n_conv}", stage, shape)
        else:
            n_pool += 1
            name = f"pool{n_pool}"
            out = [pool_output_size(s, stage.size, stage.step) for s in (h, w)]
            if min(out) < 1:
                raise SpecError(
                    f"{name}: a {stage.size}x{stage.size} pool does not fit a {h}x{w} input; remove a pool or use larger images"
                )
            layer = Layer(name, "pool", shape, cast(Shape, (c, *out)), stage.size, stage.step, mode=stage.kind)
        encoder.append(layer)
        shape = layer.out_shape

    bottleneck: list[Layer] = []
    if spec.bottleneck:
        code: Shape = (spec.bottleneck.code_size, 1, 1)
        bottleneck = [
            Layer("fc_encode", "fc", shape, code, activation=spec.bottleneck.activation),
            Layer("fc_decode", "fc", code, shape, activation="relu"),
        ]

    decoder = _mirror(spec, encoder) if spec.decoder == "mirror" else _explicit_decoder(spec, encoder, shape)
    if decoder[-1].out_shape != tuple(spec.input_shape):
        raise SpecError(
            f"{decoder[-1].name}: the decoder ends at {_shape_text(decoder[-1].out_shape)} but the input is "
            f"{_shape_text(tuple(spec.input_shape))}; change the last decoder stages so the sizes come back"
        )
    decoder[-1] = replace(decoder[-1], activation=spec.output_activation, batch_norm=False)
    return Plan(spec, tuple(encoder), tuple(bottleneck), tuple(decoder))


def _unpool_layer(
    name: str,
    kind: str,
    shape: Shape,
    target: tuple[int, int],
    kernel: int,
    stride: int,
    mirrors: tuple[int, Layer] | None = None,
) -> Layer:
    """An upsampling layer; ``mirrors``: the encoder pool it mirrors, if any, with its index among the pools."""
    c, h, w = shape
    pool_index, pool = mirrors if mirrors is not None else (None, None)
    if kind == "max" and (pool is None or pool.mode != "max"):
        raise SpecError(f"{name}: max-unpooling needs the switches of a max pool to mirror; choose another upsample kind")
    if kind in ("average", "fixed") and kernel != stride:
        raise SpecError(
            f"{name}: {kind} unpooling copies into non-overlapping patches, but the pool has size {kernel} and stride {stride}"
        )
    pad = (0, 0)
    if kind in ("max", "average", "fixed", "transposed"):
        reach = [deconv_output_size(s, kernel, stride) for s in (h, w)]
        for have, low, want in zip((h, w), reach, target):
            if not low <= want < low + stride:
                raise SpecError(f"{name}: {kind} unpooling by {stride} turns {have} into {low}..{low + stride - 1}, not {want}")
        pad = (target[0] - reach[0], target[1] - reach[1])
    return Layer(name, "unpool", shape, (c, *target), kernel, stride, output_padding=pad, mode=kind, pool_index=pool_index)


def _mirror(spec: AutoencoderSpec, encoder: list[Layer]) -> list[Layer]:
    """Walk the encoder backwards: each pool becomes an unpool to the pool's input size, each conv its transpose."""
    pools = [layer for layer in encoder if layer.kind == "pool"]
    shape = encoder[-1].out_shape
    decoder = []
    for layer in reversed(encoder):
        target = layer.in_shape[1:]
        index = layer.name[len(layer.kind) :]
        if layer.kind == "pool":
            out = _unpool_layer(
                f"unpool{index}", spec.upsample, shape, target, layer.kernel, layer.stride, (pools.index(layer), layer)
            )
        else:
            name = f"deconv{index}"
            pad = _deconv_padding(name, shape[1:], target, layer.kernel, layer.stride, layer.padding)
            out = _deconv_layer(name, layer, shape, layer.in_shape, pad)
        decoder.append(out)
        shape = out.out_shape
    return decoder


def _explicit_decoder(spec: AutoencoderSpec, encoder: list[Layer], shape: Shape) -> list[Layer]:
    pools = [layer for layer in encoder if layer.kind == "pool"]
    unused_pools = list(range(len(pools)))
    decoder: list[Layer] = []
    for i, stage in enumerate(cast("list[Deconv | Unpool | Conv]", spec.decoder), start=1):  # never 'mirror' here
        _c, h, w = shape
        if isinstance(stage, Unpool):
            if stage.kind == "max":
                if not unused_pools:
                    raise SpecError(f"unpool{i}: more max-unpooling stages than encoder max pools")
                pool_index = unused_pools.pop()
                pool = pools[pool_index]
                layer = _unpool_layer(f"unpool{i}", "max", shape, pool.in_shape[1:], pool.kernel, pool.stride, (pool_index, pool))
            else:
                target = (stage.size, stage.size) if stage.size else (h * stage.scale, w * stage.scale)
                layer = _unpool_layer(f"unpool{i}", stage.kind, shape, target, stage.scale, stage.scale)
        elif isinstance(stage, Deconv):
            name = f"deconv{i}"
            if stage.output_padding is not None:
                pad = (stage.output_padding, stage.output_padding)
                if stage.output_padding >= stage.stride:
                    raise SpecError(
                        f"{name}: output padding {stage.output_padding} must be smaller than the stride {stage.stride}"
                    )
            elif stage.size is not None:
                pad = _deconv_padding(name, (h, w), (stage.size, stage.size), stage.kernel, stage.stride, stage.padding)
            else:
                pad = (0, 0)
            out = tuple(deconv_output_size(s, stage.kernel, stage.stride, stage.padding, p) for s, p in zip((h, w), pad))
            if min(out) < 1:
                raise SpecError(f"{name}: padding {stage.padding} leaves no output from a {h}x{w} input")
            layer = _deconv_layer(name, stage, shape, (stage.filters, out[0], out[1]), pad)
        else:
            layer = _conv_layer(f"conv{i}", stage, shape)
        decoder.append(layer)
        shape = layer.out_shape
    return decoder


# --------------------------------------------------------------------------------------------- presets and files


def reference_cae(channels: int = 3, size: int = 32, upsample: str = "max", name: str = "cae32") -> AutoencoderSpec:
    """The lecture's CAE: Conv 64@5x5 p2, pool, Conv 32@3x3 p1, pool, Conv 16@3x3 p1, pool; mirrored decoder."""
    return AutoencoderSpec(
        name=name,
        input_shape=(channels, size, size),
        encoder=[
            Conv(filters=64, kernel=5, padding=2),
            Pool(),
            Conv(filters=32, kernel=3, padding=1),
            Pool(),
            Conv(filters=16, kernel=3, padding=1),
            Pool(),
        ],
        upsample=upsample,  # type: ignore[arg-type]
    )


PRESETS: dict[str, AutoencoderSpec] = {"cae32": reference_cae(3, 32, name="cae32"), "cae28": reference_cae(1, 28, name="cae28")}


def preset_summary(name: str) -> str:
    """The one-line description of a preset, e.g. "The reference CAE preset 'cae32' (3x32x32)."."""
    return f"The reference CAE preset '{name}' ({'x'.join(map(str, PRESETS[name].input_shape))})."


def parse_spec(data: dict[str, Any], source: str = "spec") -> AutoencoderSpec:
    """Validate a spec given as plain data; errors become one line naming the field."""
    try:
        return AutoencoderSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: {validation_message(exc, 'spec')} ({len(exc.errors())} problem(s) in all)") from None


def load_spec(name_or_path: str | Path) -> AutoencoderSpec:
    """A preset name, or a YAML/JSON file holding a spec."""
    if str(name_or_path) in PRESETS:
        return PRESETS[str(name_or_path)]
    path = Path(name_or_path)
    if not path.is_file():
        raise SpecError(f"'{name_or_path}' is neither a preset ({', '.join(PRESETS)}) nor a spec file")
    try:
        data = read_yaml(path)  # JSON is YAML too
    except ConfigError as exc:
        raise SpecError(str(exc)) from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a mapping with at least 'encoder'")
    return parse_spec(data, str(path))
