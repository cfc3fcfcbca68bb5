"""Segmentation sets: MNIST digits pasted on larger canvases (``digit-canvas``) and image/mask folders (``mask-folder``).

Both keep the per-pixel labels in ``ImageSet.extras["mask"]`` (uint8 [N, H, W]; 255 = ignore, as in VOC).

``digit-canvas``: each canvas (64x64 unless ``image_size`` asks for another size, at least 28) holds 1 to 4 MNIST
digits, each cropped to its ink's bounding box and pasted where it overlaps no other digit's box (1 px apart). A
pixel belongs to a digit when the digit's grey value there is at least ``FOREGROUND`` (128 of 255, i.e. 0.5, the
usual binarisation of MNIST); its label is the digit + 1, so 0 = background and 1..10 = digits 0..9 (the class
names are "background", "0" ... "9"). The image label (``labels``) is the mask class of the first digit pasted.
Train canvases use only MNIST's training digits and test canvases only its test digits, each digit at most once,
generated deterministically from fixed seeds: the same files always give the same set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from caekit.data.datasets import (
    IMAGE_EXTENSIONS,
    LoadRequest,
    centre_square,
    fit_square,
    load_dataset,
    read_image,
    register_dataset,
    split_folder,
    to_grey,
)
from caekit.data.imageset import ImageSet
from caekit.errors import DataError

FOREGROUND = 128
IGNORE = 255
CANVAS_SIZE = 64
CANVAS_COUNTS = {"train": 12_000, "test": 2_000}
CANVAS_SEEDS = {"train": 0, "test": 1}
DIGIT_CLASSES = ["background", *(str(d) for d in range(10))]


def _ink_box(digit: np.ndarray) -> tuple[slice, slice]:
    rows = np.flatnonzero(digit.max(1) > 0)
    cols = np.flatnonzero(digit.max(0) > 0)
    if len(rows) == 0:
        return slice(0, digit.shape[0]), slice(0, digit.shape[1])
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def make_canvases(
    digits: np.ndarray,
    labels: np.ndarray,
    count: int,
    size: int = CANVAS_SIZE,
    max_digits: int = 4,
    seed: int = 0,
    tries: int = 50,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` canvases of ``size`` x ``size`` from uint8 digits [M, h, w] and their labels [M].

    Returns images uint8 [count, size, size], masks uint8 [count, size, size] (0 background, d + 1 for digit d)
    and the mask class of each canvas's first digit. A digit whose box finds no free place in ``tries`` random
    positions is left out (every canvas keeps at least one digit).
    """
    if size < digits.shape[1] or size < digits.shape[2]:
        raise DataError(f"a digit canvas must be at least {digits.shape[1]} px a side to hold a digit, not {size}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    images = np.zeros((count, size, size), np.uint8)
    masks = np.zeros((count, size, size), np.uint8)
    first = np.zeros(count, np.int64)
    used = 0
    for n in range(count):
        boxes: list[tuple[int, int, int, int]] = []
        for k in range(int(rng.integers(1, max_digits + 1))):
            index = order[used % len(order)]
            rows, cols = _ink_box(digits[index])
            digit = digits[index][rows, cols]
            h, w = digit.shape
            for _ in range(tries):
                y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
                if all(y + h + 1 <= by or by + bh + 1 <= y or x + w + 1 <= bx or bx + bw + 1 <= x for by, bx, bh, bw in boxes):
                    break
            else:
                continue  # no free place: this digit is not used and stays available
            used += 1
            boxes.append((y, x, h, w))
            images[n, y : y + h, x : x + w] = digit
            masks[n, y : y + h, x : x + w][digit >= FOREGROUND] = labels[index] + 1
            if k == 0:
                first[n] = labels[index] + 1
    return images, masks, first


@register_dataset("digit-canvas")
def digit_canvas(request: LoadRequest) -> ImageSet:
    """MNIST digits on 64x64 canvases, 1-4 each, with per-pixel masks (0 background, 1-10 digits); needs the MNIST root."""
    size, split = request.image_size or CANVAS_SIZE, request.split
    mnist = load_dataset("mnist", "train" if split == "train" else "test", root=request.root, download=request.download)
    assert mnist is not None
    digits = mnist.pixels()[:, 0].numpy()
    max_digits = 4 if size >= 48 else max(1, (size // 24) ** 2)
    count = CANVAS_COUNTS["train" if split == "train" else "test"]
    images, masks, first = make_canvases(digits, mnist.labels.numpy(), count, size, max_digits, CANVAS_SEEDS.get(split, 1))
    return ImageSet(
        torch.from_numpy(images).unsqueeze(1),
        torch.from_numpy(first),
        list(DIGIT_CLASSES),
        "digit-canvas",
        {"mask": torch.from_numpy(masks)},
    )


# --------------------------------------------------------------------------------------------- image/mask folders


def _fit_mask(mask: Image.Image, fit: str, size: int) -> Image.Image:
    """The mask counterpart of ``fit_square``: same geometry, nearest-neighbour, padding marked as ignore."""
    w, h = mask.size
    if fit == "crop":
        mask = mask.crop(centre_square(w, h))
    elif fit == "pad" and w != h:
        side = max(w, h)
        canvas = Image.new("L", (side, side), IGNORE)
        canvas.paste(mask, ((side - w) // 2, (side - h) // 2))
        mask = canvas
    return mask.resize((size, size), Image.Resampling.NEAREST) if mask.size != (size, size) else mask


def read_mask(path: Path) -> Image.Image:
    """A mask as class indices: palette PNGs keep their indices; other images are read as 8-bit grey values."""
    try:
        with Image.open(path) as img:
            img.load()
            return img if img.mode in ("P", "L") else img.convert("L")
    except OSError as exc:
        raise DataError(f"cannot read mask '{path}': {exc}") from None


@register_dataset("mask-folder")
def mask_folder(request: LoadRequest) -> ImageSet | None:
    """Image/mask pairs: ROOT/images/NAME.* and ROOT/masks/NAME.png (or ROOT/{train,test}/...); mask value = class.

    Mask pixels hold class indices (0, 1, ..., K-1; 255 = ignore); ROOT/classes.txt may name the classes, one a
    line. Images and masks are fitted alike (pad marks padding as ignore, crop, stretch) to ``image_size``
    (default: the first image's larger side). The image label is the most frequent non-zero class of its mask.
    """
    root, image_size, channels, fit = request.root, request.image_size, request.channels, request.fit
    if root is None:
        raise DataError("the mask-folder dataset needs --data-root DIR holding images/ and masks/")
    base = split_folder(root, request.split)
    if base is None:
        return None
    image_dir, mask_dir = base / "images", base / "masks"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise DataError(f"'{base}' needs two folders, images/ and masks/, with files of matching names")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
    pairs = [(p, masks[p.stem]) for p in images if p.stem in masks]
    if not pairs:
        raise DataError(f"no image in '{image_dir}' has a mask of the same name in '{mask_dir}'")
    if request.strict and len(pairs) < len(images):
        missing = next(p for p in images if p.stem not in masks)
        raise DataError(f"'{missing}' has no mask '{mask_dir / missing.stem}.png'")
    arrays, mask_arrays = [], []
    size = image_size
    for image_path, mask_path in pairs:
        img, why = read_image(image_path)
        if img is None:
            raise DataError(f"cannot read image '{image_path}': {why}")
        mask = read_mask(mask_path)
        if mask.size != img.size:
            raise DataError(f"mask '{mask_path}' is {mask.size[0]}x{mask.size[1]} but its image is {img.size[0]}x{img.size[1]}")
        size = size or max(img.size)
        arrays.append(np.asarray(fit_square(img, fit, size)).transpose(2, 0, 1))
        mask_arrays.append(np.asarray(_fit_mask(mask, fit, size), dtype=np.uint8))
    pixels = torch.from_numpy(np.stack(arrays))
    grey = bool((pixels[:, 0] == pixels[:, 1]).all() and (pixels[:, 1] == pixels[:, 2]).all())
    if channels == 1 or (channels is None and grey):
        pixels = pixels[:, :1] if grey else to_grey(pixels)
    mask_tensor = torch.from_numpy(np.stack(mask_arrays))
    values = mask_tensor[mask_tensor != IGNORE]
    names_file = root / "classes.txt"
    names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()] if names_file.is_file() else []
    count = max(len(names), int(values.max()) + 1 if len(values) else 1, 2)
    if names and int(values.max()) >= len(names):
        raise DataError(f"a mask holds class {int(values.max())} but {names_file} names only {len(names)} classes")
    classes = names or [f"class{i}" for i in range(count)]
    labels = torch.tensor(
        [
            int(torch.bincount(m[(m != 0) & (m != IGNORE)].long(), minlength=count).argmax())
            if ((m != 0) & (m != IGNORE)).any()
            else 0
            for m in mask_tensor
        ],
        dtype=torch.long,
    )
    return ImageSet(pixels.contiguous(), labels, classes, base.name, {"mask": mask_tensor})


__all__ = ["DIGIT_CLASSES", "FOREGROUND", "IGNORE", "digit_canvas", "make_canvases", "mask_folder", "read_mask"]
