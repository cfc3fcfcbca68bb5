"""Corruptions: noise statistics, clipping, fractions hit, reproducibility, user errors."""

from __future__ import annotations

import pytest
import torch

from caekit.data.noise import Corruption, corrupt, gaussian, mask, salt_and_pepper, seeded
from caekit.errors import CaekitError


def test_gaussian_noise_has_the_asked_for_sigma_and_zero_mean():
    x = torch.full((64, 1, 32, 32), 0.5)
    noisy = gaussian(x, 0.05, seeded(0))  # 10 sigma from the clipping bounds: no clipping
    diff = noisy - x
    assert abs(diff.mean().item()) < 2e-3
    assert diff.std().item() == pytest.approx(0.05, rel=0.02)


def test_gaussian_noise_is_clipped_to_unit_range():
    x = torch.rand(16, 3, 8, 8)
    noisy = gaussian(x, 0.5, seeded(1))
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert (noisy == 0).any() and (noisy == 1).any()  # large sigma must actually hit both bounds


def test_salt_and_pepper_hits_the_fraction_with_black_and_white_only():
    x = torch.full((32, 1, 32, 32), 0.5)
    noisy = salt_and_pepper(x, 0.2, seeded(2))
    changed = noisy != 0.5
    assert changed.float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert set(noisy[changed].unique().tolist()) == {0.0, 1.0}
    assert (noisy[changed] == 1).float().mean().item() == pytest.approx(0.5, abs=0.03)


def test_masking_zeroes_the_fraction_and_keeps_the_rest():
    x = torch.rand(32, 1, 32, 32) * 0.9 + 0.1  # no pixel is 0 to start with
    noisy = mask(x, 0.3, seeded(3))
    zeroed = noisy == 0
    assert zeroed.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(noisy[~zeroed], x[~zeroed])


def test_seeded_corruption_is_reproducible_and_seeds_differ():
    x = torch.rand(4, 1, 16, 16)
    for kind in ("gaussian", "salt_pepper", "mask"):
        a, b = corrupt(x, kind, 0.3, seeded(5)), corrupt(x, kind, 0.3, seeded(5))
        assert torch.equal(a, b)
        assert not torch.equal(a, corrupt(x, kind, 0.3, seeded(6)))


def test_per_image_levels_broadcast():
    x = torch.full((2, 1, 64, 64), 0.5)
    noisy = Corruption("gaussian", 0.1).apply(x, torch.tensor([0.01, 0.1]).view(2, 1, 1, 1), seeded(0))
    stds = (noisy - x).flatten(1).std(1)
    assert stds[0].item() == pytest.approx(0.01, rel=0.1) and stds[1].item() == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("kind, level", [("blur", 0.1), ("gaussian", -1.0), ("mask", 1.5)])
def test_bad_corruptions_are_user_errors(kind, level):
    with pytest.raises(CaekitError):
        Corruption(kind, level)
