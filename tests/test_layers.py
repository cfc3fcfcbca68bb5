"""Each unpooling kind on hand-computed 4x4 examples (the lecture's style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from caekit.layers import unpool

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
    cl = layer(pooled.contiguous(memory_format=torch.channels_last), switches.contiguous(memory_format=torch.channels_last), (8, 8))
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
