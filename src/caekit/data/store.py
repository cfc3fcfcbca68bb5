"""The on-disk image store: decoded uint8 images in one NumPy ``.npy`` file, memory-mapped, beside a JSON manifest.

Why ``.npy``: its format has a spec (NEP 1) and a reader everywhere (``np.load(path, mmap_mode="r")``), a memory map
of it gathers a shuffled batch by reading only the pages of the rows asked for, and NumPy leaves room in its header
for the first dimension to grow, so images are appended at the end without rewriting the others. A store is built
chunk by chunk (memory holds one chunk, never the whole set) and extended the same way.

A store folder holds ``images.npy`` (uint8 [N, C, H, W]) and ``manifest.json``: the format, the image shape, the
row count, one sha256 per appended extent, and free-form ``entries`` its writer needs (for a folder: each source
file's size, date and row). The manifest is the commit point: it is written atomically after the rows it counts
are on disk, so a kill while appending leaves the store as it was (rows past the count are ignored, then
overwritten). Opening checks the sizes always and the digests once after every change.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from caekit.errors import DataError
from caekit.fileio import atomic_write_text

FORMAT = "caekit-store/1"
IMAGES = "images.npy"
MANIFEST = "manifest.json"
VERIFIED = "verified.json"


class StoredImages:
    """uint8 images [N, C, H, W] that stay on disk: ``rows`` of a memory-mapped store, gathered when asked for.

    It answers what training asks of an image tensor (``len``, ``shape``, ``index_select``, slicing) with plain
    tensors holding just the rows asked for; ``take`` makes a subset without reading any pixel.
    """

    dtype = torch.uint8
    device = torch.device("cpu")

    def __init__(self, base: Tensor, rows: Tensor | None = None) -> None:
        self.base = base
        self.rows = torch.arange(len(base)) if rows is None else rows.long()

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.base.shape[1:]))

    def dim(self) -> int:
        return 4

    def numel(self) -> int:
        return self.shape.numel()

    def element_size(self) -> int:
        return 1

    def is_pinned(self) -> bool:
        return False

    def index_select(self, dim: int, index: Tensor) -> Tensor:
        if dim != 0:
            raise ValueError("stored images are gathered by row only")
        return self.base.index_select(0, self.rows[index.cpu()])

    def __getitem__(self, key: int | slice | Tensor | list[int]) -> Tensor:
        rows = self.rows[key]
        return self.base[int(rows)] if rows.dim() == 0 else self.base.index_select(0, rows)

    def take(self, indices: Tensor) -> StoredImages:
        """The images at ``indices``, still on disk."""
        return StoredImages(self.base, self.rows[indices])

    def load(self) -> Tensor:
        """All of them in memory, in order."""
        return self.base.index_select(0, self.rows)


def _header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _header_length(shape: tuple[int, ...]) -> int:
    """The same for any row count: NumPy pads the header so that the first dimension can grow to 21 digits."""
    return len(_header((0, *shape)))


class Store:
    """An open store: its folder, image shape, row count and manifest."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder, self.manifest = folder, manifest
        c, h, w = manifest["shape"]
        self.shape: tuple[int, int, int] = (int(c), int(h), int(w))
        self.count: int = manifest["count"]

    @property
    def row_bytes(self) -> int:
        c, h, w = self.shape
        return c * h * w

    @property
    def entries(self) -> Any:
        return self.manifest.get("entries")

    def images(self, rows: Tensor | None = None) -> StoredImages:
        """The rows (all by default) as ``StoredImages`` over a copy-on-write memory map: nothing is read yet, and
        nothing written to a gathered batch can reach the file."""
        if self.count == 0:
            return StoredImages(torch.zeros((0, *self.shape), dtype=torch.uint8), rows)
        array = np.memmap(self.folder / IMAGES, np.uint8, "c", offset=_header_length(self.shape), shape=(self.count, *self.shape))
        with warnings.catch_warnings():  # np.memmap subclasses ndarray; torch shares its buffer as it is
            warnings.simplefilter("ignore", UserWarning)
            base = torch.from_numpy(array)
        return StoredImages(base, rows)

    def nbytes(self) -> int:
        return self.count * self.row_bytes


def open_store(folder: Path) -> Store | None:
    """The store in ``folder``, checked: None when there is none; DataError when it is damaged."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict):
            raise DataError(f"store '{folder}': its manifest is not a JSON object")
        if manifest.get("format") != FORMAT:
            raise DataError(f"store '{folder}' has format {manifest.get('format')!r}, not {FORMAT}")
        store = Store(folder, manifest)
        counted = sum(extent["count"] for extent in manifest["extents"])
        if counted != store.count or min(store.shape) < 1:
            raise DataError(f"store '{folder}': its manifest does not add up")
        size = (folder / IMAGES).stat().st_size
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"store '{folder}' cannot be read ({exc})") from None
    need = _header_length(store.shape) + store.nbytes()
    if size < need:
        raise DataError(f"store '{folder}': {IMAGES} holds {size:,} bytes, its manifest counts {need:,}")
    _verify_once(store)
    return store


def _stamp(store: Store) -> dict[str, Any]:
    stat = (store.folder / IMAGES).stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "count": store.count}


def _verify_once(store: Store) -> None:
    """Check every extent's sha256, unless that was done since the images file last changed."""
    stamp_path = store.folder / VERIFIED
    stamp = _stamp(store)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(stamp_path.read_text()) == stamp:
            return
    offset = _header_length(store.shape)
    with (store.folder / IMAGES).open("rb") as f:
        f.seek(offset)
        for number, extent in enumerate(store.manifest["extents"]):
            digest = hashlib.sha256()
            left = extent["count"] * store.row_bytes
            while left:
                chunk = f.read(min(left, 1 << 24))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
            if left or digest.hexdigest() != extent["sha256"]:
                raise DataError(f"store '{store.folder}': extent {number} does not match its sha256")
    with contextlib.suppress(OSError):  # a read-only store is checked again next time, nothing worse
        atomic_write_text(stamp_path, json.dumps(stamp))


class StoreWriter:
    """Appends chunks of uint8 images to a store (a new one or an open one) and commits them with the manifest."""

    def __init__(self, folder: Path, shape: tuple[int, int, int], base: Store | None = None) -> None:
        self.folder, self.shape = folder, shape
        if base is not None and base.shape != shape:
            raise ValueError("an extension must have the store's image shape")
        self.extents: list[dict[str, Any]] = list(base.manifest["extents"]) if base else []
        self.count = base.count if base else 0
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / IMAGES
        if base is None:
            path.write_bytes(_header((0, *shape)))
        self.file = path.open("r+b")
        self.file.seek(_header_length(shape) + self.count * (shape[0] * shape[1] * shape[2]))
        self.file.truncate()  # rows a killed extension left past the count
        self.digest = hashlib.sha256()
        self.added = 0

    def append(self, images: np.ndarray) -> None:
        if images.dtype != np.uint8 or tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"expected uint8 [n, {', '.join(map(str, self.shape))}] images")
        data = np.ascontiguousarray(images).tobytes()
        self.file.write(data)
        self.digest.update(data)
        self.added += len(images)

    def commit(self, entries: Any) -> Store:
        """Make the appended rows durable, then count them in the manifest (atomically)."""
        if self.added:
            self.extents.append({"count": self.added, "sha256": self.digest.hexdigest()})
        self.count += self.added
        self.file.seek(0)
        self.file.write(_header((self.count, *self.shape)))  # so that np.load sees every row
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        manifest = {"format": FORMAT, "shape": list(self.shape), "count": self.count, "extents": self.extents}
        manifest["entries"] = entries
        atomic_write_text(self.folder / MANIFEST, json.dumps(manifest))
        store = Store(self.folder, manifest)
        with contextlib.suppress(OSError):
            atomic_write_text(self.folder / VERIFIED, json.dumps(_stamp(store)))  # its writer just hashed every row
        return store

    def abort(self) -> None:
        self.file.close()


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder``'s store (processes that build or extend one wait for each other)."""
    with contextlib.suppress(OSError):
        folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform: one process at a time is then the user's to keep
        yield
        return
    try:
        handle = (folder.parent / f".{folder.name}.lock").open("a")
    except OSError:  # a read-only cache: reading its store needs no lock, and writing it fails on its own
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
