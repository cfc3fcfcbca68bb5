"""The on-disk image store: a folder decodes once into a memory-mapped .npy, grows without re-decoding, is checked,
and trains bit-identically to the same images in memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import caekit
from caekit.data import datasets
from caekit.data.datasets import load_dataset
from caekit.data.store import IMAGES, MANIFEST, StoredImages, StoreWriter, _header_length, open_store
from caekit.errors import DataError


def _digit_folder(root: Path, count: int = 60, start: int = 0) -> Path:
    """scikit-learn's real 8x8 digit scans as PNGs under ROOT/<digit>/ (three classes)."""
    bunch = load_digits()
    for i in range(start, start + count):
        label = int(bunch.target[i]) % 3
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint(bunch.images[i] * 255 / 16).astype(np.uint8)).save(root / str(label) / f"{i:04d}.png")
    return root


def _store_of(cache: Path) -> Path:
    (folder,) = (cache / "stores").glob("*/")
    return folder


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CAEKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_stored_set_holds_the_pixels_of_the_in_memory_one(tmp_path: Path, cache: Path) -> None:
    root = _digit_folder(tmp_path / "digits")
    in_memory = load_dataset("folder", root=root, in_memory=True)
    stored = load_dataset("folder", root=root, in_memory=False)
    assert isinstance(in_memory.images, torch.Tensor) and isinstance(stored.images, StoredImages)
    assert stored.shape == in_memory.shape == (1, 8, 8) and len(stored) == 60
    assert torch.equal(stored.pixels(), in_memory.images) and torch.equal(stored.labels, in_memory.labels)
    picks = torch.tensor([5, 0, 59, 5])
    assert torch.equal(stored.images.index_select(0, picks), in_memory.images[picks])
    part = stored.subset([3, 1, 40])
    assert isinstance(part.images, StoredImages)  # nothing read
    assert torch.equal(part.pixels(), in_memory.images[[3, 1, 40]])
    # a reader outside caekit: numpy's own .npy loader sees every row
    on_disk = np.load(_store_of(cache) / IMAGES, mmap_mode="r")
    assert on_disk.shape == (60, 1, 8, 8) and on_disk.dtype == np.uint8
    assert sorted(map(bytes, on_disk)) == sorted(map(bytes, in_memory.images.numpy()))


def test_the_size_of_a_set_chooses_memory_or_disk(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _digit_folder(tmp_path / "digits")
    assert load_dataset("folder", root=root).in_memory
    monkeypatch.setattr(datasets, "physical_memory", lambda: 4 * 60 * 64 - 1)  # a quarter is one byte short
    assert not load_dataset("folder", root=root).in_memory


def test_new_images_are_appended_without_decoding_the_old(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _digit_folder(tmp_path / "digits", 60)
    load_dataset("folder", root=root, in_memory=False)
    _digit_folder(root, 25, start=60)
    decoded: list[Path] = []
    original = datasets._decode_fitted
    monkeypatch.setattr(datasets, "_decode_fitted", lambda path, *a: decoded.append(path) or original(path, *a))
    grown = load_dataset("folder", root=root, in_memory=False)
    assert len(decoded) == 25 and all(int(p.stem) >= 60 for p in decoded)
    manifest = json.loads((_store_of(cache) / MANIFEST).read_text())
    assert manifest["count"] == 85 and [e["count"] for e in manifest["extents"]] == [60, 25]
    monkeypatch.setenv("CAEKIT_CACHE", str(tmp_path / "fresh"))
    fresh = load_dataset("folder", root=root)  # the same folder decoded from nothing
    assert torch.equal(grown.pixels(), fresh.images) and torch.equal(grown.labels, fresh.labels)


def test_a_colour_image_in_a_grey_store_rebuilds_it_in_colour(tmp_path: Path, cache: Path) -> None:
    root = _digit_folder(tmp_path / "digits", 30)
    assert load_dataset("folder", root=root).shape == (1, 8, 8)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(root / "0" / "red.png")
    again = load_dataset("folder", root=root)
    assert again.shape == (3, 8, 8) and len(again) == 31
    red = again.images[(again.images[:, 0] != again.images[:, 1]).flatten(1).any(1)]
    assert len(red) == 1 and int(red[0, 0].max()) == 200


def test_a_killed_append_leaves_the_store_as_it_was(tmp_path: Path, cache: Path) -> None:
    root = _digit_folder(tmp_path / "digits", 30)
    before = load_dataset("folder", root=root, in_memory=False).pixels()
    store = open_store(_store_of(cache))
    assert store is not None
    writer = StoreWriter(store.folder, store.shape, store)
    writer.append(np.full((7, *store.shape), 255, np.uint8))  # rows on disk, never counted: the kill came here
    writer.abort()
    assert (store.folder / IMAGES).stat().st_size == _header_length(store.shape) + store.nbytes() + 7 * 64  # rows past the count
    after = load_dataset("folder", root=root, in_memory=False)
    assert torch.equal(after.pixels(), before)
    (store.folder / IMAGES).write_bytes(b"short")
    with pytest.raises(DataError, match=r"holds 5 bytes, its manifest counts"):
        open_store(store.folder)


def test_a_store_that_cannot_be_locked_is_still_read(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _digit_folder(tmp_path / "digits", 30)
    before = load_dataset("folder", root=root, in_memory=False).pixels()
    store = _store_of(cache)
    lock = store.parent / f".{store.name}.lock"
    lock.unlink()
    lock.mkdir()  # the lock cannot be opened, as in a read-only cache (a chmod does not stop root, a folder does)
    decoded: list[Path] = []
    original = datasets._decode_fitted
    monkeypatch.setattr(datasets, "_decode_fitted", lambda path, *a: decoded.append(path) or original(path, *a))
    again = load_dataset("folder", root=root, in_memory=False)
    assert not again.in_memory and torch.equal(again.pixels(), before) and not decoded  # read, not decoded again


def test_an_unreadable_file_is_tried_again_once_it_can_be_read(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _digit_folder(tmp_path / "digits", 30)
    victim = sorted(root.rglob("*.png"))[3]
    original = datasets.read_image

    def denied(path: Path, reduce_to: int | None = None) -> tuple:
        return (None, "unreadable file: [Errno 13] Permission denied") if path == victim else original(path, reduce_to)

    monkeypatch.setattr(datasets, "read_image", denied)
    with pytest.warns(UserWarning, match="skipped 1 of 30 images"):
        assert len(load_dataset("folder", root=root)) == 29
    monkeypatch.setattr(datasets, "read_image", original)  # permissions fixed: size and date unchanged
    assert len(load_dataset("folder", root=root)) == 30
    manifest = json.loads((_store_of(cache) / MANIFEST).read_text())
    assert [e["count"] for e in manifest["extents"]] == [29, 1]  # appended, not rebuilt


def test_a_store_whose_manifest_is_not_an_object_is_rebuilt(tmp_path: Path, cache: Path) -> None:
    root = _digit_folder(tmp_path / "digits", 30)
    before = load_dataset("folder", root=root).images
    (_store_of(cache) / MANIFEST).write_text("[1, 2]")
    with pytest.raises(DataError, match="its manifest is not a JSON object"):
        open_store(_store_of(cache))
    with pytest.warns(UserWarning, match="is damaged .*; decoding the images again"):
        assert torch.equal(load_dataset("folder", root=root).images, before)


def test_training_from_the_store_matches_training_in_memory(tmp_path: Path, cache: Path) -> None:
    root = _digit_folder(tmp_path / "digits", 90)
    runs = {}
    for in_memory in (True, False):
        config = {
            "model": {"name": "cae28", "args": {"input_shape": [1, 8, 8]}},
            "data": {"name": "folder", "root": str(root), "in_memory": in_memory},
            "train": {"epochs": 2, "batch_size": 16, "progress": False, "seed": 3},
            "runs_dir": str(tmp_path / "runs"),
            "name": f"memory-{in_memory}",
        }
        runs[in_memory] = caekit.train(config)
    assert runs[True].splits.train.in_memory and not runs[False].splits.train.in_memory
    assert [e["train_loss"] for e in runs[True].history] == [e["train_loss"] for e in runs[False].history]
    memory, disk = runs[True].model.state_dict(), runs[False].model.state_dict()
    assert all(torch.equal(memory[k], disk[k]) for k in memory)
