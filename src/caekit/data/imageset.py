"""``ImageSet``: a whole dataset decoded once into uint8 (in memory, or in an on-disk store), and the batch iterator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from caekit.data.store import StoredImages

if TYPE_CHECKING:
    import numpy as np


def to_unit(images: Tensor) -> Tensor:
    """uint8 images 0..255 as float in [0, 1] (float images are taken to be in [0, 1] already)."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


@dataclass
class ImageSet:
    """Images as uint8 [N, C, H, W] with int64 labels; an epoch never decodes a file. ``images`` is a tensor, or
    ``StoredImages`` for a set that stays on disk (``in_memory`` says which)."""

    images: Tensor | StoredImages
    labels: Tensor
    classes: list[str]
    name: str = "images"
    extras: dict[str, Tensor] = field(default_factory=dict)  # per-image tensors such as segmentation masks

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.labels) != len(self.images):
            raise ValueError("one label per image")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Channels, height, width of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def in_memory(self) -> bool:
        return isinstance(self.images, Tensor)

    def subset(self, indices: Tensor | np.ndarray | list[int], name: str | None = None) -> ImageSet:
        """The images at ``indices`` (a stored set's subset stays on disk)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        images = self.images.take(idx) if isinstance(self.images, StoredImages) else self.images[idx]
        return ImageSet(images, self.labels[idx], self.classes, name or self.name, {k: v[idx] for k, v in self.extras.items()})

    def pixels(self) -> Tensor:
        """All images as one uint8 tensor in memory (a stored set is read whole: for small sets and subsets)."""
        return self.images.load() if isinstance(self.images, StoredImages) else self.images

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()

    def tensors(self) -> dict[str, Tensor | StoredImages]:
        """What a batch holds: ``image`` (uint8), ``label`` and any extras."""
        return {"image": self.images, "label": self.labels, **self.extras}

    def unit_images(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Images as float in [0, 1]."""
        return to_unit(self.images[start:stop])


class Batches:
    """Shuffled (or ordered) batches straight from in-memory tensors, sharded across ranks like DistributedSampler.

    The order of epoch ``e`` depends only on (seed, e), so a resumed run sees exactly the batches it would have seen.
    With ``weights`` (one per image) an epoch draws as many images as there are, with replacement, in proportion
    to the weights: a class-balanced sampler when the weights are 1 / class size. ``pad=False`` (evaluation) gives
    each rank its own unequal share instead, so no image is counted twice.
    """

    def __init__(
        self,
        tensors: dict[str, Tensor | StoredImages],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        weights: Tensor | None = None,
        pad: bool = True,
    ) -> None:
        self.tensors = tensors
        self.size = len(next(iter(tensors.values())))
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.weights, self.pad = weights, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights.double(), self.size, replacement=True, generator=generator)
        elif self.shuffle:
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        if self.world_size > 1:
            if self.pad:
                per_rank = -(-self.size // self.world_size)
                order = torch.cat([order, order[: per_rank * self.world_size - self.size]])  # pad like DistributedSampler
            order = order[self.rank :: self.world_size]
        return order

    def __len__(self) -> int:
        n = -(-self.size // self.world_size) if self.pad else len(range(self.rank, self.size, self.world_size))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = self._indices()
        device = next(iter(self.tensors.values())).device
        pinned = device.type == "cpu" and next(iter(self.tensors.values())).is_pinned()
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size].to(device)
            batch = {k: v.index_select(0, idx) for k, v in self.tensors.items()}
            yield {k: v.pin_memory() for k, v in batch.items()} if pinned else batch
