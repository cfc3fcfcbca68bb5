"""Datasets: a registry of loaders that decode once into memory, splits and labelled samples."""

from caekit.data import canvas  # noqa: F401  (registers its datasets)
from caekit.data.datasets import DATASETS, LoadRequest, conform, load_dataset, register_dataset
from caekit.data.imageset import Batches, ImageSet
from caekit.data.splits import Splits, labelled_sample, make_splits, split

__all__ = [
    "DATASETS",
    "Batches",
    "ImageSet",
    "LoadRequest",
    "Splits",
    "conform",
    "labelled_sample",
    "load_dataset",
    "make_splits",
    "register_dataset",
    "split",
]
