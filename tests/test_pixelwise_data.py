"""Segmentation sets: the digit-canvas generator's masks match the pasted digits; image/mask folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from caekit.data import load_dataset, make_splits
from caekit.data.canvas import DIGIT_CLASSES, FOREGROUND, IGNORE, make_canvases
from caekit.errors import DataError


def _coded_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's real 8x8 digit scans, 3x upscaled to 24x24, whose ink pixels carry their class in their value.

    A pixel of digit d is 130 + 10 d where the scan is dark enough, else 0..63: so every canvas pixel tells which
    digit (if any) was pasted there, and the masks can be checked pixel by pixel.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    scans = np.kron(bunch.images[:400], np.ones((3, 3)))  # 24x24
    labels = bunch.target[:400].astype(np.int64)
    ink = scans >= 8
    digits = np.where(ink, 130 + 10 * labels[:, None, None], np.rint(scans * 4)).astype(np.uint8)
    return digits, labels


def test_canvas_masks_match_the_pasted_digits() -> None:
    digits, labels = _coded_digits()
    images, masks, first = make_canvases(digits, labels, count=60, size=64, max_digits=4, seed=3)
    assert images.shape == masks.shape == (60, 64, 64)
    ink = images >= FOREGROUND
    assert np.array_equal(masks > 0, ink)  # foreground exactly where a digit is at least 128
    expected = np.where(ink, (images.astype(np.int64) - 130) // 10 + 1, 0)
    assert np.array_equal(masks, expected)  # and labelled with the class of the digit pasted there
    for n in range(60):
        assert first[n] in np.unique(masks[n])  # the image label is the class of a digit on the canvas
    counts = [len(np.unique(m)) - 1 for m in masks]
    assert max(counts) >= 3 and min(counts) >= 1  # several digit classes on a canvas, never none


def test_canvases_are_deterministic_and_seed_dependent() -> None:
    digits, labels = _coded_digits()
    a = make_canvases(digits, labels, 20, 40, seed=7)
    b = make_canvases(digits, labels, 20, 40, seed=7)
    c = make_canvases(digits, labels, 20, 40, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_canvas_too_small_for_a_digit_is_refused() -> None:
    digits, labels = _coded_digits()
    with pytest.raises(DataError, match="at least 24"):
        make_canvases(digits, labels, 2, size=20)


@pytest.mark.slow
def test_digit_canvas_dataset_from_mnist(mnist_root: Path) -> None:
    test = load_dataset("digit-canvas", "test", root=mnist_root)
    assert test.images.shape == (2000, 1, 64, 64) and test.extras["mask"].shape == (2000, 64, 64)
    assert test.classes == DIGIT_CLASSES and test.extras["mask"].dtype == torch.uint8
    images, masks = test.images[:, 0], test.extras["mask"]
    assert torch.equal(masks > 0, images >= FOREGROUND)
    assert int(masks.max()) == 10 and set(torch.unique(masks).tolist()) == set(range(11))
    again = load_dataset("digit-canvas", "test", root=mnist_root, image_size=40, channels=3)
    assert again.images.shape == (2000, 3, 40, 40) and again.extras["mask"].shape == (2000, 40, 40)
    splits = make_splits("digit-canvas", str(mnist_root), limit=200, val_fraction=0.1)
    assert len(splits.train) + len(splits.val) == 200 and splits.train.extras["mask"].shape[0] == len(splits.train)


def _write_pairs(root: Path, count: int = 6) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        mask = np.zeros((20, 30), np.uint8)
        mask[5:15, 3 + i : 13 + i] = 1 + i % 2
        image = (rng.random((20, 30, 3)) * 60 + mask[..., None] * 80).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"im{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    (root / "classes.txt").write_text("sky\nboat\nbuoy\n")


def test_mask_folder_pads_masks_with_ignore(tmp_path: Path) -> None:
    _write_pairs(tmp_path)
    data = load_dataset("mask-folder", "train", root=tmp_path, image_size=30)
    assert data.images.shape == (6, 3, 30, 30) and data.extras["mask"].shape == (6, 30, 30)
    assert data.classes == ["sky", "boat", "buoy"]
    mask = data.extras["mask"][0]
    assert (mask[:5] == IGNORE).all() and (mask[-5:] == IGNORE).all()  # 20 rows padded to 30, 5 above and below
    assert int((mask == 1).sum()) == 100  # the 10x10 square survives exactly
    assert data.labels.tolist() == [1, 2, 1, 2, 1, 2]
    assert load_dataset("mask-folder", "test", root=tmp_path) is None


def test_mask_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="images/ and masks/"):
        load_dataset("mask-folder", root=tmp_path)
