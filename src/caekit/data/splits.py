"""Deterministic train/validation/test splits and stratified labelled samples, all from a seed."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from caekit.data.datasets import load_dataset
from caekit.data.imageset import ImageSet
from caekit.errors import DataError


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet | None
    test: ImageSet | None  # None: a run trained on in-memory splits that leaves testing to its caller

    def describe(self) -> str:
        parts = (
            [f"train {len(self.train)}"]
            + ([f"val {len(self.val)}"] if self.val else [])
            + ([f"test {len(self.test)}"] if self.test is not None else [])
        )
        c, h, w = self.train.shape
        return f"{self.train.name}: {', '.join(parts)} images of {c}x{h}x{w}, {len(self.train.classes)} classes"


def split(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Hold out ``fraction`` of ``data``, stratified by label where every class has at least two images."""
    if not 0 < fraction < 1:
        raise DataError(f"a held-out fraction must lie between 0 and 1, got {fraction}")
    labels = data.labels.numpy()
    counts = np.bincount(labels, minlength=len(data.classes))
    stratify = labels if counts[counts > 0].min() >= 2 else None
    if stratify is None:
        small = [data.classes[i] for i in np.flatnonzero((counts > 0) & (counts < 2))]
        warnings.warn(
            f"classes with a single image ({', '.join(small[:5])}) cannot be split by class; splitting at random", stacklevel=2
        )
    try:
        keep, held = train_test_split(np.arange(len(data)), test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:  # too few images per class for the held-out size: fall back to a plain random split
        keep, held = train_test_split(np.arange(len(data)), test_size=fraction, random_state=seed)
    return data.subset(np.sort(keep)), data.subset(np.sort(held))


def labelled_sample(data: ImageSet, per_class: int | None = None, fraction: float | None = None, seed: int = 0) -> ImageSet:
    """A stratified sample: ``per_class`` images of each class (all of a smaller class, with a warning) or a fraction."""
    if (per_class is None) == (fraction is None):
        raise DataError("give exactly one of per_class or fraction for a labelled sample")
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    short: list[str] = []
    for label in range(len(data.classes)):
        members = np.flatnonzero(data.labels.numpy() == label)
        if len(members) == 0:
            continue
        want = per_class if per_class is not None else max(1, round(len(members) * fraction))  # type: ignore[operator]
        if want > len(members):
            short.append(f"{data.classes[label]} ({len(members)})")
        picked.append(rng.permutation(members)[:want])
    if short:
        warnings.warn(
            f"{len(short)} classes have fewer than {per_class} images and are used whole: {', '.join(short[:5])}", stacklevel=2
        )
    return data.subset(np.sort(np.concatenate(picked)))


def make_splits(
    name: str,
    root: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    fit: str = "pad",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    download: bool = False,
    strict: bool = False,
    in_memory: bool | None = None,
) -> Splits:
    """Train/validation/test of a registered dataset; sets without a test split get one carved out by seed."""
    options: dict[str, Any] = {
        "root": root,
        "image_size": image_size,
        "channels": channels,
        "fit": fit,
        "download": download,
        "strict": strict,
        "in_memory": in_memory,
    }
    train = load_dataset(name, "train", **options)
    assert train is not None
    test = load_dataset(name, "test", **options)
    if test is None:
        train, test = split(train, test_fraction, seed)
    if limit is not None and limit < len(train):
        train = split(train, 1 - limit / len(train), seed)[0]
    val = None
    if val_fraction > 0:
        train, val = split(train, val_fraction, seed + 1)
    return Splits(train, val, test)
