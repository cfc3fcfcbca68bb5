"""Datasets on real images: loaders, splits, labelled samples, corrupt files and the in-memory batches."""

from __future__ import annotations

import itertools
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from caekit.data import Batches, labelled_sample, load_dataset, make_splits, split
from caekit.errors import ConfigError, DataError


def test_digits_are_the_bundled_scans() -> None:
    data = load_dataset("digits")
    assert data.images.shape == (1797, 1, 8, 8) and data.images.dtype == torch.uint8
    assert data.images.max() == 255 and data.class_counts() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert load_dataset("digits", "test") is None  # no fixed test split: make_splits carves one


def test_splits_are_deterministic_stratified_and_disjoint() -> None:
    a = make_splits("digits", val_fraction=0.1, test_fraction=0.2, seed=3)
    b = make_splits("digits", val_fraction=0.1, test_fraction=0.2, seed=3)
    c = make_splits("digits", val_fraction=0.1, test_fraction=0.2, seed=4)
    assert torch.equal(a.train.images, b.train.images) and not torch.equal(a.train.images, c.train.images)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert len(a.test) == 360 and len(a.val) == 144
    # stratified: every class keeps its share of the test split (within one image)
    test_counts = np.array(a.test.class_counts())
    assert test_counts.min() >= 34 and test_counts.max() <= 37
    rows = {bytes(img.numpy()) for part in (a.train, a.val, a.test) for img in part.images}
    assert len(rows) >= 1790  # (a few digits scans are exact duplicates of each other)


def test_labelled_sample_per_class_and_fraction() -> None:
    data = load_dataset("digits")
    sample = labelled_sample(data, per_class=10, seed=1)
    assert sample.class_counts() == [10] * 10
    assert torch.equal(sample.images, labelled_sample(data, per_class=10, seed=1).images)
    assert not torch.equal(sample.images, labelled_sample(data, per_class=10, seed=2).images)
    tenth = labelled_sample(data, fraction=0.1, seed=0)
    assert tenth.class_counts() == [round(n * 0.1) for n in data.class_counts()]
    with pytest.warns(UserWarning, match="fewer than 500 images"):
        assert len(labelled_sample(data, per_class=500)) == 1797
    with pytest.raises(DataError):
        labelled_sample(data)


def test_cifar_sample_folders_give_standard_labels(cifar_sample: Path) -> None:
    train = load_dataset("cifar10", "train", root=cifar_sample)
    test = load_dataset("cifar10", "test", root=cifar_sample)
    assert train.images.shape == (2000, 3, 32, 32) and len(test) == 1000
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"
    assert train.class_counts() == [200] * 10
    means = train.images.float().mean((0, 2, 3)) / 255
    assert torch.allclose(means, torch.tensor([0.4913, 0.4821, 0.4465]), atol=0.03)  # the known CIFAR-10 channel means


def test_plankton_folder_is_grey_fitted_and_long_tailed(plankton_sample: Path) -> None:
    data = load_dataset("folder", root=plankton_sample, image_size=48)
    assert data.images.shape == (2667, 1, 48, 48)  # R = G = B in every file: detected as grey
    counts = data.class_counts()
    assert len(counts) == 121 and min(counts) == 6 and max(counts) == 165
    # padding uses each image's border colour: plankton sits on white, so corners stay bright
    assert data.images[:, 0, 0, 0].float().mean() > 200
    colour = load_dataset("folder", root=plankton_sample, image_size=24, channels=3)
    assert colour.images.shape[1:] == (3, 24, 24)


def _small_folder(root: Path, source: Path, per_class: int = 5) -> Path:
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for f in sorted((source / "train" / name).iterdir())[:per_class]:
            shutil.copy(f, root / name / f.name)
    return root


def test_corrupt_image_is_reported_and_skipped(tmp_path: Path, cifar_sample: Path) -> None:
    root = _small_folder(tmp_path / "pets", cifar_sample)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    with pytest.warns(UserWarning, match=r"skipped 1 of 11 images .*broken\.png"):
        data = load_dataset("folder", root=root)
    assert len(data) == 10 and data.class_counts() == [5, 5]
    with pytest.raises(DataError, match=r"unreadable image .*broken\.png"):
        load_dataset("folder", root=root, strict=True)


def test_empty_class_and_empty_folder_are_clear_errors(tmp_path: Path, cifar_sample: Path) -> None:
    root = _small_folder(tmp_path / "pets", cifar_sample)
    (root / "bird").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset("folder", root=root)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset("folder", root=tmp_path / "nothing")
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset("folder", root=tmp_path / "absent")


def test_folder_cache_returns_the_same_pixels(tmp_path: Path, cifar_sample: Path) -> None:
    root = _small_folder(tmp_path / "pets", cifar_sample)
    first = load_dataset("folder", root=root)
    second = load_dataset("folder", root=root)  # from the cache
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def test_missing_mnist_is_an_actionable_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data-root"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_mnist_through_torchvision(mnist_root: Path) -> None:
    train = load_dataset("mnist", root=mnist_root)
    test = load_dataset("mnist", "test", root=mnist_root)
    assert train.images.shape == (60000, 1, 28, 28) and len(test) == 10000
    assert train.labels[0] == 5 and test.labels[0] == 7


def test_resize_and_channel_conversion() -> None:
    data = load_dataset("digits", image_size=28, channels=3)
    assert data.images.shape == (1797, 3, 28, 28)
    assert torch.equal(data.images[:, 0], data.images[:, 2])


def test_split_falls_back_for_singleton_classes() -> None:
    data = load_dataset("digits")
    keep = torch.cat([torch.arange(0, 300), torch.tensor([int((data.labels == 9).nonzero()[0])])])
    tiny = data.subset([*keep[data.labels[keep] != 9].tolist(), int(keep[-1])])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a, b = split(tiny, 0.2, seed=0)
    assert len(a) + len(b) == len(tiny)
    assert any("single image" in str(w.message) for w in caught)


def test_batches_order_depends_on_seed_and_epoch_only() -> None:
    tensors = {"image": torch.arange(10).view(10, 1, 1, 1).to(torch.uint8), "label": torch.arange(10)}
    first = [b["label"].tolist() for b in Batches(tensors, 4, seed=1)]
    again = [b["label"].tolist() for b in Batches(tensors, 4, seed=1)]
    assert first == again and sorted(itertools.chain(*first)) == list(range(10)) and [len(b) for b in first] == [4, 4, 2]
    later = Batches(tensors, 4, seed=1)
    later.set_epoch(1)
    assert [b["label"].tolist() for b in later] != first
    shards = [
        list(itertools.chain(*(b["label"].tolist() for b in Batches(tensors, 2, seed=1, rank=r, world_size=3)))) for r in range(3)
    ]
    assert all(len(s) == 4 for s in shards) and set(itertools.chain(*shards)) == set(range(10))  # padded like DistributedSampler


def test_weighted_batches_balance_classes() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    weights = 1.0 / torch.bincount(labels)[labels].double()
    drawn = torch.cat(
        [
            b["label"]
            for b in Batches({"image": torch.zeros(100, 1, 1, 1, dtype=torch.uint8), "label": labels}, 25, weights=weights)
        ]
    )
    assert len(drawn) == 100 and 30 <= int((drawn == 1).sum()) <= 70
