"""The dataset registry: digits (embedded), mnist, fashion-mnist, cifar10 and class-per-folder images.

A loader takes one ``LoadRequest`` (the split, the data root and how the images should come) and returns an
``ImageSet`` (uint8 in memory) for that split, or None when the dataset has no such split (then
``splits.make_splits`` carves one out). torchvision's loaders are used as they are; they download
only when asked (``download=True``), never in tests.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle  # restricted below: CIFAR-10's batches are pickles, and only arrays come out of them
import shutil
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from caekit.data.imageset import ImageSet
from caekit.data.store import Store, StoreWriter, locked, open_store
from caekit.errors import DataError
from caekit.fileio import atomic_write_text, cache_root, physical_memory
from caekit.registry import Registry

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
FIT_MODES = ("pad", "stretch", "crop")


@dataclass(frozen=True)
class LoadRequest:
    """What a dataset loader is asked for: one split, where the data lives, and how its images should come. A loader
    uses the fields that apply to it (``load_dataset`` resizes and converts whatever comes back)."""

    split: str = "train"
    root: Path | None = None
    image_size: int | None = None
    channels: int | None = None
    fit: str = "pad"  # one of FIT_MODES: how an image that is not square becomes one
    download: bool = False  # torchvision's sets only, never in tests
    strict: bool = False  # an unreadable image stops the load instead of being skipped
    cache: bool = True  # folders: keep the decoded images in a store in caekit's cache
    in_memory: bool | None = None  # folders: load the store into memory (None: when it takes a quarter of it or less)


Loader = Callable[[LoadRequest], ImageSet | None]
DATASETS: Registry[Loader] = Registry("dataset")
register_dataset = DATASETS.register


def default_data_root() -> Path:
    return Path(os.environ.get("CAEKIT_DATA", "data"))


def cache_dir() -> Path:
    return cache_root()


def load_dataset(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    fit: str = "pad",
    download: bool = False,
    strict: bool = False,
    in_memory: bool | None = None,
) -> ImageSet | None:
    """One split of a registered dataset, resized to ``image_size`` and converted to ``channels`` if given."""
    if fit not in FIT_MODES:
        raise DataError(f"unknown fit '{fit}'; choose one of: {', '.join(FIT_MODES)}")
    loader = DATASETS.get(name)
    request = LoadRequest(split, Path(root) if root else None, image_size, channels, fit, download, strict, in_memory=in_memory)
    data = loader(request)
    if data is None:
        return None
    data.name = name
    return conform(data, image_size, channels)


def check_fits(count: int, channels: int, size: int, what: str, bytes_per_value: int = 1) -> None:
    """Refuse, before allocating, a set of ``count`` images of ``channels`` x ``size`` x ``size`` that would take more than
    half of this machine's memory."""
    need = count * channels * size * size * bytes_per_value
    if need > physical_memory() // 2:
        raise DataError(
            f"{what}: {count:,} images of {channels}x{size}x{size} would need {need / 2**30:,.1f} GB, more than half of "
            f"this machine's {physical_memory() / 2**30:,.0f} GB; choose a smaller data.image_size or data.limit"
        )


def conform(data: ImageSet, image_size: int | None, channels: int | None) -> ImageSet:
    """Resize (antialiased bilinear) and convert channels (grey <-> RGB) of a whole set at once (in memory)."""
    c, h, w = data.shape
    if (image_size is None or (h, w) == (image_size, image_size)) and channels in (None, c):
        return data
    images = data.pixels()
    if image_size is not None and image_size != images.shape[-1]:  # the float copies of the resize: 4 bytes a value, twice
        check_fits(len(images), max(images.shape[1], channels or 0), image_size, data.name, bytes_per_value=9)
    if channels is not None and channels != images.shape[1]:
        if channels == 3 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1).contiguous()
        elif channels == 1 and images.shape[1] == 3:
            images = to_grey(images)
        else:
            raise DataError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")
    if image_size is not None and tuple(images.shape[-2:]) != (image_size, image_size):
        chunks = [
            F.interpolate(part.float(), size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
            for part in images.split(4096)
        ]
        images = torch.cat(chunks).round_().clamp_(0, 255).to(torch.uint8)
    return ImageSet(images, data.labels, data.classes, data.name, data.extras)


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """RGB uint8 -> luminance uint8 with PIL's weights (ITU-R 601-2)."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------------------------- built-in sets


@register_dataset("digits")
def digits(request: LoadRequest) -> ImageSet | None:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 real scans; no download). No fixed test split."""
    from sklearn.datasets import load_digits

    if request.split != "train":
        return None
    bunch = load_digits()
    images = torch.from_numpy(np.rint(bunch.images * (255 / 16)).astype(np.uint8)).unsqueeze(1)
    return ImageSet(images, torch.from_numpy(bunch.target.astype(np.int64)), [str(i) for i in range(10)], "digits")


def _torchvision_set(cls_name: str, request: LoadRequest, hint: str) -> ImageSet:
    import torchvision.datasets as tvd

    root, split = request.root or default_data_root(), request.split
    try:
        ds = getattr(tvd, cls_name)(str(root), train=split == "train", download=request.download)
    except RuntimeError as exc:
        raise DataError(f"{cls_name} not found under '{root}' ({exc}); {hint}") from None
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
    return ImageSet(images.contiguous(), labels, list(ds.classes), f"{cls_name.lower()}-{split}")


@register_dataset("mnist")
def mnist(request: LoadRequest) -> ImageSet:
    """LeCun's handwritten digits, 60,000 train + 10,000 test, 1x28x28 (torchvision's loader, ROOT/MNIST/raw)."""
    return _torchvision_set(
        "MNIST", request, "pass --data-root DIR holding MNIST/raw (e.g. made by shared/data/get_mnist.py DIR) or add --download"
    )


@register_dataset("fashion-mnist")
def fashion_mnist(request: LoadRequest) -> ImageSet:
    """Zalando's clothing images, 60,000 train + 10,000 test, 1x28x28 (torchvision's loader, ROOT/FashionMNIST/raw)."""
    return _torchvision_set("FashionMNIST", request, "pass --data-root DIR holding FashionMNIST/raw or add --download")


@register_dataset("cifar10")
def cifar10(request: LoadRequest) -> ImageSet | None:
    """torchvision's CIFAR-10 (cifar-10-batches-py), or the same images as train/ and test/ class folders."""
    root, split = request.root or default_data_root(), request.split
    for candidate in (root, root / "cifar10"):
        if (candidate / split).is_dir() and not (candidate / "cifar-10-batches-py").is_dir():
            return folder(replace(request, root=candidate))
    batches = root / "cifar-10-batches-py"
    if not batches.is_dir() and request.download:
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    if not batches.is_dir():
        raise DataError(
            f"CIFAR10 not found under '{root}'; pass --data-root DIR holding cifar-10-batches-py or train/ and test/ "
            "class folders, or add --download"
        )
    return read_cifar_batches(batches, split)


class _ArraysOnly(pickle.Unpickler):
    """An unpickler for CIFAR-10's python batches that builds numpy arrays and nothing else: a batch file that
    names any other callable (``os.system``, ...) is refused instead of run."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )  # the last: bytes in protocol-2 pickles written by Python 3

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR-10 batch holds arrays and lists only")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own array reconstructor, wherever numpy keeps it
        if module == "_codecs":
            return codecs.encode
        return getattr(np, name)


def _read_batch(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = _ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"'{path}' is not a CIFAR-10 batch ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"'{path}' is not a CIFAR-10 batch (it holds a {type(data).__name__})")
    return data


def read_cifar_batches(folder: Path, split: str = "train") -> ImageSet:
    """CIFAR-10's python batches (``data_batch_1..5`` or ``test_batch``, ``batches.meta``), read without running code."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    for name in names:
        batch = _read_batch(folder / name)
        data, targets = batch.get("data"), batch.get("labels")
        if (
            not isinstance(data, np.ndarray)
            or data.dtype != np.uint8
            or data.ndim != 2
            or data.shape[1] != 3072
            or not isinstance(targets, list)
            or len(targets) != len(data)
        ):
            raise DataError(f"'{folder / name}' does not hold CIFAR-10's uint8 [N, 3072] data and N labels")
        images.append(data.reshape(-1, 3, 32, 32))
        labels += targets
    classes = _read_batch(folder / "batches.meta").get("label_names")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DataError(f"'{folder / 'batches.meta'}' does not list the class names")
    return ImageSet(
        torch.from_numpy(np.concatenate(images)).contiguous(), torch.tensor(labels, dtype=torch.long), classes, f"cifar10-{split}"
    )


# --------------------------------------------------------------------------------------------- class-per-folder images


def split_folder(root: Path, split: str) -> Path | None:
    """ROOT/<split> when ROOT has a train/ folder, else ROOT itself for the train split; None when that split has no
    folder (the caller then carves it out of the train split)."""
    if not root.is_dir():
        raise DataError(f"data root '{root}' is not a folder")
    if (root / "train").is_dir():
        return root / split if (root / split).is_dir() else None
    return root if split == "train" else None


@register_dataset("folder")
def folder(request: LoadRequest) -> ImageSet | None:
    """Images under ROOT/<class>/ (or ROOT/{train,test}/<class>/), any size, grey or colour.

    Each image is fitted into a square (``fit``: pad with its border colour, stretch, or centre crop) and resized to
    ``image_size`` (default: the largest side found, capped at 64). Unreadable images are skipped with a warning
    naming them, or stop the load when ``strict``.
    """
    if request.root is None:
        raise DataError("the folder dataset needs --data-root DIR (class-per-folder images)")
    split_root = split_folder(request.root, request.split)
    if split_root is None:
        return None
    root = split_root
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"'{root}' has no class folders: put images under {root}/<class-name>/")
    files: list[tuple[Path, int]] = []
    ignored = {"broken links": 0, "files with another extension": 0}
    for label, name in enumerate(classes):
        found = []
        for path in sorted((root / name).rglob("*")):
            if path.is_symlink() and not path.exists():
                ignored["broken links"] += 1
            elif path.is_file() and not path.name.startswith("."):
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    found.append(path)
                else:
                    ignored["files with another extension"] += 1
        if not found:
            raise DataError(f"class folder '{root / name}' holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        files += [(p, label) for p in found]
    if any(ignored.values()):
        counts = ", ".join(f"{n} {what}" for what, n in ignored.items() if n)
        warnings.warn(f"'{root}': ignored {counts} (images are {', '.join(IMAGE_EXTENSIONS)})", stacklevel=2)
    return _decode_folder(root, classes, files, request)


def centre_square(w: int, h: int) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) of the largest centred square in a w x h image."""
    side = min(w, h)
    return (w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side


def fit_square(img: Image.Image, fit: str, size: int) -> Image.Image:
    w, h = img.size
    if fit == "crop":
        img = img.crop(centre_square(w, h))
    elif fit == "pad" and w != h:
        arr = np.asarray(img)
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        fill = tuple(int(v) for v in np.median(border, axis=0).reshape(-1))
        side = max(w, h)
        canvas = Image.new(img.mode, (side, side), fill if len(fill) > 1 else fill[0])
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        img = canvas
    return img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None) if img.size != (size, size) else img


MAX_PIXELS = 50_000_000  # one image above this (a 7,000 px square) would take seconds and gigabytes to decode


def read_image(path: Path, reduce_to: int | None = None) -> tuple[Image.Image | None, str]:
    """An image file as 8-bit RGB, or None and why not. 16- and 32-bit greyscale images are scaled to 8 bits (not
    clipped); images above ``MAX_PIXELS`` are refused from their header, before anything is decoded.

    With ``reduce_to``, a JPEG is decoded at the smallest of libjpeg's scales (1/2, 1/4, 1/8) that keeps both sides
    at least ``reduce_to`` (PIL's draft mode): a 4000x3000 photo wanted at 64 px decodes at 500x375, 64 times fewer
    pixels. The pixel limit then applies to what is decoded.

    A PNG's chunk checksums are verified first: PIL decodes a damaged image stream without them, and a PNG cut or
    spliced inside its pixel data would otherwise come back with wrong rows instead of being skipped."""
    try:
        with warnings.catch_warnings():  # PIL's own warning for large images: the limit below says it in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            if img.format == "PNG":
                with img:
                    img.verify()  # every chunk's CRC, up to IEND; the image must be opened again after it
                img = Image.open(path)
        with img:
            if reduce_to and img.format == "JPEG":
                img.draft(img.mode, (reduce_to, reduce_to))
            if img.width * img.height > MAX_PIXELS:
                return None, f"too large: {img.width}x{img.height} pixels, above the limit of {MAX_PIXELS:,}; downscale it first"
            img.load()
            return _to_8bit(img).convert("RGB"), ""
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return None, f"{_skip_cause(exc)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


SKIP_CAUSES = ("not an image", "damaged", "too large", "unreadable file")


def _skip_cause(exc: BaseException) -> str:
    """Which of ``SKIP_CAUSES`` an image's decoding error is (the start of every skipped image's reason)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image"
    if isinstance(exc, Image.DecompressionBombError):
        return "too large"
    if isinstance(exc, OSError) and exc.errno is not None:  # permission denied, vanished, a folder named *.png
        return "unreadable file"
    return "damaged"


def _to_8bit(img: Image.Image) -> Image.Image:
    """High-bit-depth greyscale (PIL modes I;16*, I, F) scaled into 0..255; other modes as they are."""
    if img.mode.startswith("I;16") or img.mode == "I":
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(np.round(arr * 255.0 / top), 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        arr = np.asarray(img).astype(np.float64)
        top = 1.0 if arr.max() <= 1.0 else float(arr.max())
        return Image.fromarray(np.clip(np.round(arr * 255.0 / top), 0, 255).astype(np.uint8), "L")
    return img


def _store_folder(root: Path, request: LoadRequest) -> Path:
    """Where the store of ``root`` decoded for ``request`` lives: one per folder and size, channels and fit."""
    digest = hashlib.sha256(str(root.resolve()).encode())
    digest.update(repr((request.image_size, request.channels, request.fit, DECODER)).encode())
    return cache_dir() / "stores" / digest.hexdigest()[:32]


DECODER = 3  # how files become pixels; a change makes new stores beside the old (2: JPEG draft mode, 3: PNG CRCs)
IN_MEMORY_SHARE = 4  # data.in_memory unset: a set up to a quarter of this machine's memory is loaded into it
CHUNK = 1024  # images decoded, converted and appended at a time


def _decode_folder(root: Path, classes: list[str], files: list[tuple[Path, int]], request: LoadRequest) -> ImageSet:
    """The folder's images from its store in caekit's cache, decoding only files the store does not hold yet;
    loaded into memory when they fit (``request.in_memory``), else read from disk batch by batch."""
    store_dir = _store_folder(root, request)
    labels = torch.tensor([label for _, label in files], dtype=torch.long)
    if request.cache:
        try:
            with locked(store_dir):
                store, rows, skipped = _update_store(store_dir, root, files, request)
        except OSError as exc:  # a read-only or full cache folder costs a decode in memory, nothing more
            warnings.warn(
                f"could not cache the decoded images in {store_dir.parent} ({exc.strerror}); set CAEKIT_CACHE to a "
                "writable folder to skip decoding next time",
                stacklevel=3,
            )
        else:
            kept = rows >= 0
            _check_skipped(root, classes, files, labels[kept], skipped, request.strict, store_dir.name)
            images = store.images(rows[kept])
            in_memory = request.in_memory
            if in_memory is None:
                in_memory = images.numel() <= physical_memory() // IN_MEMORY_SHARE
            if in_memory:
                check_fits(len(images), images.shape[1], images.shape[2], str(root))
                return ImageSet(images.load(), labels[kept], classes, root.name)
            return ImageSet(images, labels[kept], classes, root.name)
    check_fits(len(files), request.channels or 3, request.image_size or 64, str(root))
    size = request.image_size or _default_side(_header_sides([path for path, _ in files]))
    chunks, positions, skipped = [], [], []
    for chunk, where, unread in _decode_chunks([path for path, _ in files], request.fit, size, f"decoding {root.name}"):
        chunks.append(chunk)
        positions += where
        skipped += [(str(files[i][0]), why) for i, why in unread]
    taken = torch.tensor(positions, dtype=torch.long)
    _check_skipped(root, classes, files, labels[taken], skipped, request.strict, store_dir.name)
    decoded = torch.from_numpy(np.concatenate(chunks)) if chunks else torch.zeros((0, 3, size, size), dtype=torch.uint8)
    return ImageSet(_channels(decoded, request.channels, _is_grey(decoded)), labels[taken], classes, root.name)


def _decoding_pool() -> ThreadPoolExecutor:
    """Threads for reading image files (PIL decodes and resizes without holding the GIL)."""
    return ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))


def _header_sides(paths: list[Path]) -> list[int]:
    """Each image's larger side from its header (0 for a file that is no image); nothing is decoded."""
    with _decoding_pool() as pool:
        return [max(wh) if wh else 0 for wh in pool.map(header_size, paths)]


def _default_side(sides: Iterable[int]) -> int:
    """The size a folder is decoded at when none is asked for: its largest image side, capped at 64."""
    return min(64, max(sides, default=0) or 1)


def _decode_chunks(
    paths: list[Path], fit: str, size: int, what: str
) -> Iterator[tuple[np.ndarray, list[int], list[tuple[int, str]]]]:
    """Decode ``paths`` in parallel, ``CHUNK`` at a time: (uint8 RGB [n, 3, size, size] of the readable ones, their
    positions in ``paths``, (position, why) of the others). Memory holds one chunk and as many full-size images as
    there are threads; a progress bar shows on a terminal."""
    from tqdm import tqdm

    bar = tqdm(total=len(paths), desc=what, unit="img", disable=not sys.stderr.isatty() or len(paths) < CHUNK, leave=False)
    with _decoding_pool() as pool, bar:
        for start in range(0, len(paths), CHUNK):
            part = paths[start : start + CHUNK]
            decoded = list(pool.map(lambda path: _decode_fitted(path, fit, size), part))
            kept = [(start + i, np.asarray(img)) for i, (img, _) in enumerate(decoded) if img is not None]
            unread = [(start + i, why) for i, (img, why) in enumerate(decoded) if img is None]
            array = np.stack([a for _, a in kept]).transpose(0, 3, 1, 2) if kept else np.zeros((0, 3, size, size), np.uint8)
            bar.update(len(part))
            yield array, [i for i, _ in kept], unread


def _is_grey(images: torch.Tensor) -> bool:
    return bool((images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all())


def _channels(images: torch.Tensor, channels: int | None, grey: bool) -> torch.Tensor:
    """RGB uint8 images as ``channels`` (None: one when every image is grey, else three)."""
    if channels == 1 or (channels is None and grey):
        return images[:, :1].contiguous() if grey else to_grey(images)
    return images


def _update_store(
    folder: Path, root: Path, files: list[tuple[Path, int]], request: LoadRequest, colour: bool = False
) -> tuple[Store, torch.Tensor, list[tuple[str, str]]]:
    """Open the folder's store and append the files it lacks (rebuilding it when a file it holds has changed, the
    default image size moved, or a colour image joins a grey store). Returns the store, each file's row (-1:
    unreadable) and the unreadable files with their reasons."""
    try:
        store = open_store(folder)
        known: dict[str, list] = store.entries["files"] if store is not None else {}
        grey_store = bool(store.entries["grey"]) if store is not None else not colour
    except (DataError, KeyError, TypeError) as exc:
        warnings.warn(f"the cached copy of '{root}' is damaged ({exc}); decoding the images again", stacklevel=4)
        store, known, grey_store = None, {}, not colour
    try:
        stats = [path.stat() for path, _ in files]
    except OSError as exc:
        raise DataError(f"cannot read '{exc.filename}' ({exc.strerror}): did it move while the folder was read?") from None
    names = [str(path.relative_to(root)) for path, _ in files]
    fresh = {  # an "unreadable file" (permissions, say) is tried again: fixing it changes neither size nor date
        name
        for name, st in zip(names, stats)
        if name in known and known[name][:2] == [st.st_size, st.st_mtime_ns] and not known[name][4].startswith("unreadable file")
    }
    changed = any(name in known and known[name][:2] != [st.st_size, st.st_mtime_ns] for name, st in zip(names, stats))
    new = [i for i, name in enumerate(names) if name not in fresh]
    sides = {name: known[name][2] for name in fresh}
    for i, side in zip(new, _header_sides([files[i][0] for i in new])):
        sides[names[i]] = side
    size = request.image_size or _default_side(sides.values())
    if store is not None and (changed or store.shape[1] != size):
        store = None
    if store is None:
        shutil.rmtree(folder, ignore_errors=True)
        known, new = {}, list(range(len(files)))
    entries: dict[str, Any] = {"root": str(root.resolve()), "grey": grey_store, "files": dict(known)}
    writer: StoreWriter | None = None
    try:
        for chunk, where, unread in _decode_chunks([files[i][0] for i in new], request.fit, size, f"decoding {root.name}"):
            images = torch.from_numpy(chunk)
            grey = _is_grey(images)
            if writer is None:
                if store is None:  # a new store's channels: as asked, else one while every image so far is grey
                    entries["grey"] = grey and not colour
                channels = request.channels or (1 if entries["grey"] else 3)
                writer = StoreWriter(folder, (channels, size, size), store)
            if request.channels is None and entries["grey"] and not grey:  # a colour image in a grey store
                writer.abort()
                shutil.rmtree(folder, ignore_errors=True)
                return _update_store(folder, root, files, request, colour=True)
            row = writer.count + writer.added
            writer.append(_channels(images, writer.shape[0], grey).numpy())
            for offset, j in enumerate(where):
                i = new[j]
                entries["files"][names[i]] = [stats[i].st_size, stats[i].st_mtime_ns, sides[names[i]], row + offset, ""]
            for j, why in unread:
                i = new[j]
                entries["files"][names[i]] = [stats[i].st_size, stats[i].st_mtime_ns, sides[names[i]], -1, why]
        if writer is not None:
            store = writer.commit(entries)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    assert store is not None
    rows = torch.tensor([entries["files"][name][3] for name in names], dtype=torch.long)
    skipped = [(str(files[i][0]), entries["files"][name][4]) for i, name in enumerate(names) if rows[i] < 0]
    return store, rows, skipped


def _check_skipped(
    root: Path,
    classes: list[str],
    files: list[tuple[Path, int]],
    kept_labels: torch.Tensor,
    skipped: list[tuple[str, str]],
    strict: bool,
    key: str,
) -> None:
    """Refuse (strict) or warn about unreadable images; refuse a set or a class left with none."""
    if skipped and strict:
        more = (
            f"; {len(skipped) - 1} more: {', '.join(path for path, _ in skipped[1:6])}{', ...' if len(skipped) > 6 else ''}"
            if len(skipped) > 1
            else ""
        )
        raise DataError(f"unreadable image {skipped[0][0]}: {skipped[0][1]}{more} (or leave data.strict off to skip them)")
    if not len(kept_labels):
        raise DataError(f"no readable images under '{root}'")
    empty = sorted(set(range(len(classes))) - set(kept_labels.tolist()))
    if empty:
        raise DataError(f"class '{classes[empty[0]]}' has no readable images under '{root}'")
    _warn_skipped(skipped, len(files), key)


def header_size(path: Path) -> tuple[int, int] | None:
    """Width and height from an image file's header (nothing is decoded); None for a file that is no image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.size
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _decode_fitted(path: Path, fit: str, size: int) -> tuple[Image.Image | None, str]:
    img, why = read_image(path, reduce_to=size)
    return (fit_square(img, fit, size), "") if img is not None else (None, why)


def _warn_skipped(skipped: list, total: int, key: str) -> None:
    """One warning for all unreadable images, naming a file that lists each with its reason (path TAB reason)."""
    if skipped:
        listing = cache_dir() / "stores" / f"{key}.skipped.tsv"
        try:
            atomic_write_text(listing, "".join(f"{path}\t{why}\n" for path, why in skipped))
        except OSError:
            listing = Path("(no list: the cache folder is not writable)")
        # a reason from a cache written before causes were recorded has none of them: counted as damaged
        causes = Counter(next((c for c in SKIP_CAUSES if why.startswith(f"{c}: ")), "damaged") for _, why in skipped)
        counted = ", ".join(f"{n} {cause}" for cause, n in sorted(causes.items(), key=lambda item: -item[1]))
        warnings.warn(
            f"skipped {len(skipped)} of {total} images that could not be read ({counted}; first: {skipped[0][0]}; each, "
            f"with its reason, is listed in {listing})",
            stacklevel=3,
        )
