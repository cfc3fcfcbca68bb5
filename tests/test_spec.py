"""Architecture specs: shape formulas against PyTorch, validation errors, presets and the summary table."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from caekit.errors import ConfigError, SpecError
from caekit.models import create_model
from caekit.spec import (
    PRESETS,
    AutoencoderSpec,
    Conv,
    Deconv,
    Pool,
    Unpool,
    as_shape,
    conv_output_size,
    deconv_output_size,
    load_spec,
    parse_spec,
    plan,
)


def test_a_shape_is_three_positive_whole_numbers() -> None:
    assert as_shape([1, 28, 28]) == (1, 28, 28)
    assert as_shape(torch.Size([3, 32, 32])) == (3, 32, 32)
    for bad in ("", 0, "123", [1, 28], [1, 28, 0], [1.5, 28, 28], [True, 28, 28], None):
        with pytest.raises(ConfigError, match="a shape is three whole numbers"):
            as_shape(bad)  # type: ignore[arg-type]  # what a damaged checkpoint header or config can hold


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4), padding=st.integers(0, 3))
def test_conv_output_size_matches_pytorch(size: int, kernel: int, stride: int, padding: int) -> None:
    expected = conv_output_size(size, kernel, stride, padding)
    if expected < 1:
        return
    out = nn.Conv2d(1, 1, kernel, stride, padding)(torch.zeros(1, 1, size, size))
    assert out.shape[-1] == expected == (size - kernel + 2 * padding) // stride + 1


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 20),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 4),
    padding=st.integers(0, 3),
    extra=st.integers(0, 3),
)
def test_deconv_output_size_matches_pytorch(size: int, kernel: int, stride: int, padding: int, extra: int) -> None:
    output_padding = extra % stride  # PyTorch requires output_padding < stride
    expected = deconv_output_size(size, kernel, stride, padding, output_padding)
    if expected < 1:
        return
    out = nn.ConvTranspose2d(1, 1, kernel, stride, padding, output_padding)(torch.zeros(1, 1, size, size))
    assert out.shape[-1] == expected == (size - 1) * stride - 2 * padding + kernel + output_padding


def test_reference_preset_is_the_lecture_architecture() -> None:
    p = plan(PRESETS["cae32"])
    rows = [(layer.name, layer.out_shape) for layer in p.layers]
    assert rows == [
        ("conv1", (64, 32, 32)),
        ("pool1", (64, 16, 16)),
        ("conv2", (32, 16, 16)),
        ("pool2", (32, 8, 8)),
        ("conv3", (16, 8, 8)),
        ("pool3", (16, 4, 4)),
        ("unpool3", (16, 8, 8)),
        ("deconv3", (32, 8, 8)),
        ("unpool2", (32, 16, 16)),
        ("deconv2", (64, 16, 16)),
        ("unpool1", (64, 32, 32)),
        ("deconv1", (3, 32, 32)),
    ]
    deconvs = {layer.name: (layer.in_shape[0], layer.out_shape[0], layer.kernel) for layer in p.decoder if layer.kind == "deconv"}
    assert deconvs == {"deconv3": (16, 32, 3), "deconv2": (32, 64, 3), "deconv1": (64, 3, 5)}
    assert p.code_size == 256
    assert p.decoder[-1].activation == "sigmoid"
    # about 119 MFLOP per image per training step: 3 x forward multiply-adds x 2 FLOP
    assert 6 * p.macs == pytest.approx(119e6, rel=0.01)


@pytest.mark.parametrize("upsample", ["max", "average", "fixed", "nearest", "bilinear", "bicubic", "transposed"])
def test_odd_sizes_come_back_to_28(upsample: str) -> None:
    model = create_model("cae28", upsample=upsample)
    assert [layer.out_shape[1] for layer in model.plan.encoder] == [28, 14, 14, 7, 7, 3]
    x = torch.rand(2, 1, 28, 28)
    y = model(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_built_model_matches_planned_shapes() -> None:
    model = create_model("cae32")
    x = torch.rand(1, 3, 32, 32)
    maps = model.encoder.feature_maps(x)
    assert [tuple(m.shape[1:]) for _, m in maps] == [layer.out_shape for layer in model.plan.encoder]
    params = sum(p.numel() for p in model.parameters())
    assert params == model.plan.params


def test_fc_bottleneck_and_1x1_convs() -> None:
    spec = AutoencoderSpec(
        input_shape=(1, 28, 28),
        encoder=[Conv(filters=16, padding=1), Pool(), Conv(filters=4, kernel=1), Pool()],
        bottleneck={"code_size": 10},
        upsample="nearest",
    )
    model = create_model("cae", spec=spec)
    assert model.encode(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 1, 28, 28)
    assert "fc_encode" in model.plan.summary()


def test_explicit_decoder_that_cannot_return_names_the_layer() -> None:
    data = {
        "input_shape": [1, 28, 28],
        "encoder": [{"type": "conv", "filters": 8, "padding": 1}, {"type": "pool"}],
        "decoder": [{"type": "unpool", "kind": "nearest"}, {"type": "deconv", "filters": 1, "kernel": 3}],
    }
    with pytest.raises(SpecError, match=r"deconv2: the decoder ends at 1x30x30 but the input is 1x28x28"):
        plan(parse_spec(data))


def test_explicit_decoder_with_target_sizes() -> None:
    spec = parse_spec(
        {
            "input_shape": [1, 28, 28],
            "encoder": [
                {"type": "conv", "filters": 8, "stride": 2, "padding": 1},
                {"type": "conv", "filters": 4, "stride": 2, "padding": 1},
            ],
            "decoder": [
                {"type": "deconv", "filters": 8, "stride": 2, "padding": 1, "size": 14},
                {"type": "deconv", "filters": 1, "stride": 2, "padding": 1, "size": 28},
            ],
        }
    )
    model = create_model("cae", spec=spec)
    assert [layer.output_padding for layer in model.plan.decoder] == [(1, 1), (1, 1)]
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"encoder": []}, "encoder"),
        ({"encoder": [{"type": "conv", "filters": 0}]}, "filters"),
        ({"encoder": [{"type": "conv", "filters": 4, "kernel": 3, "colour": 1}]}, "colour"),
        ({"encoder": [{"type": "conv", "filters": 4}], "upsample": "cubic"}, "upsample"),
        ({"input_shape": [1, 4, 4], "encoder": [{"type": "conv", "filters": 4, "kernel": 7}]}, "conv1: a 7x7 kernel"),
        ({"input_shape": [1, 4, 4], "encoder": [{"type": "pool"}, {"type": "pool"}, {"type": "pool"}]}, "pool3"),
        ({"encoder": [{"type": "pool", "kind": "average"}], "upsample": "max"}, "unpool1: max-unpooling needs the switches"),
        ({"encoder": [{"type": "pool", "size": 3, "stride": 2}], "upsample": "average"}, "non-overlapping"),
    ],
)
def test_bad_specs_fail_with_a_message(data: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        plan(parse_spec(data))


def test_load_spec_from_yaml_and_errors(tmp_path) -> None:
    good = tmp_path / "small.yaml"
    good.write_text(
        "input_shape: [1, 28, 28]\nencoder:\n  - {type: conv, filters: 8, kernel: 3, padding: 1}\n  - {type: pool}\nupsample: bilinear\n"
    )
    assert plan(load_spec(good)).decoder[-1].out_shape == (1, 28, 28)
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="neither a preset"):
        load_spec(tmp_path / "missing.yaml")


def test_summary_lists_every_layer_with_parameters_and_macs() -> None:
    text = plan(PRESETS["cae32"]).summary()
    assert "conv1    64@5x5" in text and "deconv1  3@5x5" in text
    assert "4,864" in text  # conv1 parameters: 3*64*25 + 64
    assert "4,915,200" in text  # conv1 multiply-adds: 64*32*32*3*25
    assert text.splitlines()[-1].startswith("code size: 256")


def test_unpool_stage_in_explicit_decoder_uses_pool_switches_in_reverse() -> None:
    spec = AutoencoderSpec(
        input_shape=(1, 12, 12),
        encoder=[Conv(filters=4, padding=1), Pool(), Conv(filters=4, padding=1), Pool(size=3)],
        decoder=[Unpool(kind="max"), Deconv(filters=4, padding=1), Unpool(kind="max"), Deconv(filters=1, padding=1)],
    )
    p = plan(spec)
    assert [layer.pool_index for layer in p.decoder if layer.kind == "unpool"] == [1, 0]
    assert [layer.out_shape[1] for layer in p.decoder] == [6, 6, 12, 12]
