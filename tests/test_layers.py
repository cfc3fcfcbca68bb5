"""Each unpooling kind on hand-computed 4x4 examples (the lecture's style), and the by-taps transposed convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from caekit.layers import ConvTranspose2d, _TransposedConvByTaps, unpool

POOLED = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)


def test_average_unpooling_copies_each_value_into_its_patch() -> None:
    out = unpool("average", 1, 2, 2)(POOLED, (4, 4))
    expected = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]], dtype=torch.float32)
    assert torch.equal(out[0, 0], expected)


def test_fixed_unpooling_puts_the_value_top_left_and_zeros_elsewhere() -> None:
    out = unpool("fixed", 1, 2, 2)(POOLED, (4, 4))
    expected = torch.tensor([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(out[0, 0], expected)


def test_max_unpooling_uses_the_switches_of_the_pool() -> None:
    x = torch.tensor([[1, 5, 2, 0], [3, 0, 8, 1], [0, 9, 4, 4], [2, 1, 7, 3]], dtype=torch.float32).view(1, 1, 4, 4)
    pooled, switches = F.max_pool2d(x, 2, 2, return_indices=True)
    assert torch.equal(pooled[0, 0], torch.tensor([[5.0, 8.0], [9.0, 7.0]]))
    out = unpool("max", 1, 2, 2)(pooled, switches, (4, 4))
    expected = torch.tensor([[0, 5, 0, 0], [0, 0, 8, 0], [0, 9, 0, 0], [0, 0, 7, 0]], dtype=torch.float32)
    assert torch.equal(out[0, 0], expected)


def test_max_unpooling_in_channels_last_matches_nchw() -> None:
    x = torch.rand(2, 3, 8, 8)
    pooled, switches = F.max_pool2d(x, 2, 2, return_indices=True)
    layer = unpool("max", 3, 2, 2)
    cl = layer(
        pooled.contiguous(memory_format=torch.channels_last), switches.contiguous(memory_format=torch.channels_last), (8, 8)
    )
    assert torch.equal(cl, layer(pooled, switches, (8, 8)))


def test_odd_target_sizes_pad_the_rows_a_floor_pool_dropped() -> None:
    for kind in ("average", "fixed"):
        out = unpool(kind, 1, 2, 2)(POOLED, (5, 5))
        assert out.shape[-2:] == (5, 5)
        assert torch.equal(out[0, 0, 4], torch.zeros(5)) and torch.equal(out[0, 0, :, 4], torch.zeros(5))


def test_interpolation_kinds_reach_exact_sizes() -> None:
    nearest = unpool("nearest", 1, 2, 2)(POOLED, (4, 4))
    assert torch.equal(nearest, unpool("average", 1, 2, 2)(POOLED, (4, 4)))
    for kind in ("bilinear", "bicubic"):
        out = unpool(kind, 1, 2, 2)(POOLED, (7, 7))
        assert out.shape[-2:] == (7, 7)
    bilinear = unpool("bilinear", 1, 2, 2)(POOLED, (4, 4))[0, 0]
    assert bilinear[0, 0] == 1 and bilinear[3, 3] == 4 and bilinear[1, 1] == 1.75  # (0.75^2*1 + 0.75*0.25*(2+3) + 0.25^2*4)


def test_transposed_unpooling_is_learned_and_reaches_the_size() -> None:
    layer = unpool("transposed", 4, 2, 2, (1, 1))
    x = torch.rand(2, 4, 3, 3, requires_grad=True)
    out = layer(x, (7, 7))
    assert out.shape == (2, 4, 7, 7)
    out.sum().backward()
    assert x.grad is not None and any(p.grad is not None for p in layer.parameters())


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(
    ("cout", "kernel", "stride", "padding", "output_padding", "bias"),
    [
        (3, 5, 1, 2, 0, True),
        (1, (4, 5), 1, (0, 1), 0, False),
        (2, 4, 1, 1, 0, True),
        (1, 4, 2, 1, 0, True),
        (3, (4, 5), (2, 3), (1, 0), (1, 2), False),
    ],
)
def test_by_taps_transposed_conv_matches_pytorch_in_values_and_gradients(
    memory_format, cout, kernel, stride, padding, output_padding, bias
) -> None:
    torch.manual_seed(0)
    ours = ConvTranspose2d(32, cout, kernel, stride, padding, output_padding, bias=bias).to(memory_format=memory_format)
    theirs = nn.ConvTranspose2d(32, cout, kernel, stride, padding, output_padding, bias=bias)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 32, 9, 7).contiguous(memory_format=memory_format)
    assert ours._by_taps(x)
    a, b = x.clone().requires_grad_(), x.contiguous().requires_grad_()
    out, expected = ours(a), theirs(b)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(mine.grad, reference.grad, rtol=1e-4, atol=1e-4)


def test_by_taps_gradients_pass_gradcheck_in_double() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 32, 4, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(32, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: _TransposedConvByTaps.apply(*t, (1, 1), (1, 1), (0, 0)), (x, weight, bias))
    assert torch.autograd.gradcheck(lambda *t: _TransposedConvByTaps.apply(*t, (2, 2), (1, 0), (1, 0)), (x, weight, bias))


@pytest.mark.parametrize(
    "layer",
    [
        ConvTranspose2d(32, 3, 4, padding=4),
        ConvTranspose2d(16, 3, 5, padding=1),
        ConvTranspose2d(32, 4, 5, padding=1),
        ConvTranspose2d(32, 3, 5, padding=1, dilation=2),
        ConvTranspose2d(32, 3, 3, padding=1),
    ],
)
def test_layers_outside_the_by_taps_case_are_plain_pytorch(layer) -> None:
    x = torch.randn(1, layer.in_channels, 8, 8)
    assert not layer._by_taps(x)
    reference = nn.ConvTranspose2d(
        layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding, dilation=layer.dilation
    )
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x), reference(x))


def test_an_impossible_output_padding_gets_pytorchs_error() -> None:
    layer = ConvTranspose2d(32, 1, 4, stride=1, padding=1, output_padding=1)  # output padding must be < stride
    assert not layer._by_taps(torch.randn(1, 32, 8, 8))
    with pytest.raises(RuntimeError, match="output padding"):
        layer(torch.randn(1, 32, 8, 8))
