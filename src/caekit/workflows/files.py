"""A trained model on files and splits: what the CLI's verbs call, one function each.

Every function takes the model's run folder (or checkpoint), reads through ``caekit.inference``, draws through
``caekit.viz`` and writes into one output folder. No output may replace one of the inputs, and no two outputs of
one call may share a name: such a call is refused before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from caekit import inference, viz
from caekit.data.canvas import read_mask
from caekit.data.datasets import IMAGE_EXTENSIONS, header_size
from caekit.data.imageset import to_unit
from caekit.data.noise import Corruption, seeded
from caekit.errors import CheckpointError, ConfigError, DataError
from caekit.fileio import atomic_write_text
from caekit.metrics import confusion_matrix
from caekit.training.pixelwise import bicubic, model_scale
from caekit.viz import pixelwise as pixviz


def check_outputs(inputs: Sequence[str | Path], outputs: Sequence[Path]) -> None:
    """Refuse a call that would write over one of its inputs, or write two of its outputs to one file."""
    given = {Path(p).resolve() for p in inputs}
    seen: dict[Path, Path] = {}
    for out in outputs:
        target = out.resolve()
        if target in given:
            raise ConfigError(f"'{out}' is one of the input images: choose another --out folder")
        if target in seen:
            raise ConfigError(
                f"two outputs would both be written to '{out}' (inputs with the same name in different "
                "folders or with different extensions): run them in separate calls"
            )
        seen[target] = out


@dataclass
class Written:
    """What a call wrote: one file per input image (and their kind), a picture of them all, optional scores."""

    files: list[Path]
    what: str
    picture: Path | str
    folder: Path
    scores: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        line = f"{len(self.files)} {self.what} and {self.picture} written to {self.folder}"
        if self.scores:
            line += "\n" + ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in self.scores.items())
        return line


def _stems(images: Sequence[str | Path]) -> list[str]:
    """The inputs' names without extension, after checking that each is an image file that exists."""
    for image in images:
        path = Path(image)
        if path.is_dir():
            raise ConfigError(f"'{path}' is a folder; give image files, e.g. '{path}/*.png'")
        if not path.is_file():
            raise DataError(f"image '{path}' does not exist")
    return [Path(p).stem for p in images]


def _out(out: str | Path | None, run: str | Path, default: str) -> Path:
    """``--out`` as given, or ``default`` inside the run folder (so ``caekit report`` finds it)."""
    return Path(out) if out is not None else inference.output_folder(run) / default


def reconstruct_files(
    images: Sequence[str | Path], run: str | Path, out: str | Path | None = None, keep_size: bool = False
) -> Written:
    """Reconstruct image files: ``<name>.png`` each, at the model's size (or, with ``keep_size``, at the input's), and
    ``comparison.png`` (originals above reconstructions); ``out`` defaults to ``reconstructions/`` in the run folder."""
    folder = _out(out, run, "reconstructions")
    targets = [folder / f"{stem}.png" for stem in _stems(images)] + [folder / "comparison.png"]
    check_outputs(images, targets)
    model, meta = inference.load(run)
    originals = inference.read_images(images, meta["image_shape"])
    outputs = inference.reconstruct(model, originals)
    folder.mkdir(parents=True, exist_ok=True)
    fit = (meta.get("data") or {}).get("fit", "pad")
    written = [
        inference.save_png(
            inference.unfit(image, fit, header_size(Path(path)) or tuple(image.shape[:0:-1])) if keep_size else image, target
        )
        for image, path, target in zip(outputs, images, targets)
    ]
    return Written(written, "reconstructions", viz.reconstructions(to_unit(originals), outputs, targets[-1]), folder)


def denoise_files(
    images: Sequence[str | Path],
    run: str | Path,
    out: str | Path | None = None,
    add_noise: str | None = None,
    level: float = 0.3,
    seed: int = 0,
) -> Written:
    """Clean image files with a denoising model into ``out/<name>.png``; with ``add_noise`` corrupt them first
    (kept as ``<name>_noisy.png``); ``out`` defaults to ``denoised/`` in the run folder."""
    folder = _out(out, run, "denoised")
    stems = _stems(images)
    targets = [folder / f"{stem}.png" for stem in stems]
    noisy_targets = [folder / f"{stem}_noisy.png" for stem in stems] if add_noise else []
    check_outputs(images, [*targets, *noisy_targets, folder / "comparison.png"])
    model, meta = inference.load(run)
    clean = to_unit(inference.read_images(images, meta["image_shape"]))
    inputs = Corruption(add_noise, level)(clean, seeded(seed)) if add_noise else clean
    outputs = inference.reconstruct(model, inputs)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(f"noisy ({add_noise} {level:g})" if add_noise else "input", inputs), ("denoised", outputs)]
    if add_noise:
        rows.append(("clean", clean))
        for image, path in zip(inputs, noisy_targets):
            inference.save_png(image, path)
    written = [inference.save_png(image, path) for image, path in zip(outputs, targets)]
    return Written(
        written,
        "denoised images",
        viz.image_rows([(label, batch[:16]) for label, batch in rows], folder / "comparison.png"),
        folder,
    )


def sample_files(
    run: str | Path,
    count: int = 64,
    labels: list[int] | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    image_dir: str | Path | None = None,
) -> Path:
    """Samples of a trained VAE/DCGAN as a grid picture (default ``samples-seed<N>.png`` in the run folder) and, with
    ``image_dir``, one PNG each."""
    model, _ = inference.load(run)
    images = inference.sample(model, count, labels, seed)
    if image_dir is not None:
        Path(image_dir).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            inference.save_png(image, Path(image_dir) / f"sample_{i:04d}.png")
    from caekit.viz.generative import sample_grid

    classes = getattr(model, "num_classes", 0)
    columns = classes if classes and not labels else min(count, 8)
    return sample_grid(images, _out(out, run, f"samples-seed{seed}.png"), f"{count} samples", columns=columns)


def feature_maps_file(image: str | Path, run: str | Path, out: str | Path | None = None, per_stage: int = 8) -> Path:
    """The feature maps of each encoder stage of a trained model for one image file (default
    ``feature_maps-<name>.png`` in the run folder)."""
    stem = _stems([image])[0]
    target = _out(out, run, f"feature_maps-{stem}.png")
    check_outputs([image], [target])
    model, meta = inference.load(run)
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "feature_maps"):
        raise CheckpointError(f"model '{meta['model']['name']}' has no encoder stages to show")
    x = to_unit(inference.read_images([image], meta["image_shape"]))
    with torch.no_grad():
        maps = [(name, fmap[0]) for name, fmap in encoder.feature_maps(x)]
    if not maps:
        raise CheckpointError(f"model '{meta['model']['name']}' has only fully connected stages: no feature maps to show")
    return viz.feature_maps(x[0], maps, target, per_stage)


@dataclass
class Encoded:
    codes: np.ndarray
    path: Path
    images: int


def _suffix(split: str, dataset: str | None) -> str:
    return f"-{dataset}-{split}" if dataset else f"-{split}"


def encode_split(
    run: str | Path, out: str | Path | None = None, split: str = "test", dataset: str | None = None, data_root: str | None = None
) -> Encoded:
    """Codes of a split (the run's own, or another dataset's) as .npz (``codes``, ``labels``, ``classes``) or .npy;
    default ``codes-<split>.npz`` in the run folder."""
    path = _out(out, run, f"codes{_suffix(split, dataset)}.npz")
    model, meta = inference.load(run)
    data = inference.dataset_split(run, meta, split, dataset, data_root)
    codes = inference.encode(model, data, progress=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, codes)
    else:
        np.savez(path, codes=codes, labels=data.labels.numpy(), classes=np.array(data.classes))
    return Encoded(codes, path, len(data))


def embed_split(
    run: str | Path,
    out: str | Path | None = None,
    split: str = "test",
    dataset: str | None = None,
    data_root: str | None = None,
    methods: tuple[str, ...] = ("tsne", "pca"),
    max_points: int | None = 5000,
    projector: bool = True,
    thumbnails: int = 0,
    seed: int = 0,
) -> Any:
    """t-SNE/PCA maps and the TensorBoard projector bundle of a split's codes (``caekit.evaluate.embed.embed``), by
    default in ``embedding/`` of the run folder (``embedding-<split>/`` for another split)."""
    from caekit.evaluate.embed import embed

    folder = _out(out, run, "embedding" if split == "test" and dataset is None else f"embedding{_suffix(split, dataset)}")
    model, meta = inference.load(run)
    data = inference.dataset_split(run, meta, split, dataset, data_root)
    return embed(model, data, folder, methods, max_points, projector, thumbnails, seed)


def cluster_split(
    run: str | Path,
    split: str = "test",
    dataset: str | None = None,
    data_root: str | None = None,
    methods: tuple[str, ...] = ("kmeans", "agglomerative"),
    k: int | None = None,
    max_points: int = 5000,
    pca_dims: int = 50,
    seed: int = 0,
    out: str | Path | None = None,
) -> tuple[str, int, Path]:
    """Cluster a split's codes, raw pixels and PCA of pixels: the Markdown table (NMI, ARI, accuracy), the number of
    images, and the file it was written to (default ``clusters-<split>.md`` in the run folder)."""
    from caekit.data.splits import split as hold_out
    from caekit.evaluate.cluster import compare_clusterings, rows_to_markdown

    path = _out(out, run, f"clusters{_suffix(split, dataset)}.md")
    model, meta = inference.load(run)
    data = inference.dataset_split(run, meta, split, dataset, data_root)
    if len(data) > max_points:
        data = hold_out(data, 1 - max_points / len(data), seed)[0]
    codes = inference.encode(model, data, progress=True)
    rows = compare_clusterings(codes, data.pixels().numpy(), data.labels.numpy(), k, methods, pca_dims, seed, max_points=None)
    table = rows_to_markdown(rows)
    atomic_write_text(path, f"{data.name} {split}: {len(data)} images\n\n{table}\n")
    return table, len(data), path


def segment_files(
    images: Sequence[str | Path], run: str | Path, out: str | Path | None = None, masks: str | Path | None = None
) -> Written:
    """Segment image files at their own size: ``NAME_mask.png`` (class indices), ``NAME_overlay.png`` and
    ``overlays.png``; with ``masks`` (ground truth named like the images) also ``scores.json`` and ``iou.png``.
    ``out`` defaults to ``segmentations/`` in the run folder."""
    folder = _out(out, run, "segmentations")
    stems = _stems(images)
    check_outputs(images, [folder / f"{s}_{kind}.png" for s in stems for kind in ("mask", "overlay")])
    model, meta = inference.load(run)
    if getattr(model, "task", "segment") != "segment":
        raise ConfigError("this model was not trained for segmentation (its task is super-resolution); use caekit upscale")
    channels = int(meta["image_shape"][0])
    count = getattr(model, "classes", None) or len(meta.get("classes", []))
    names = list(meta.get("classes") or [])
    names = names if len(names) == count else ["background", *(f"class{i}" for i in range(1, count))]
    folder.mkdir(parents=True, exist_ok=True)
    pictures, predictions, truths, written = [], [], [], []
    confusion = torch.zeros(count, count, dtype=torch.long)
    for path, stem in zip(images, stems):
        image = inference.read_file(path, channels)
        pred = inference.segment(model, image)
        written.append(inference.save_png(pred.byte().numpy(), folder / f"{stem}_mask.png"))
        inference.save_png(
            (pixviz.overlay(to_unit(image), pred, count) * 255).round().astype(np.uint8), folder / f"{stem}_overlay.png"
        )
        if masks is not None:
            truth = _truth_mask(Path(masks), stem, pred)
            confusion += confusion_matrix(pred, truth, count)
            truths.append(truth)
        pictures.append(to_unit(image))
        predictions.append(pred)
    overlays: Path | str = f"{len(images)} overlays"
    if len({tuple(i.shape) for i in pictures}) == 1:
        overlays = pixviz.segmentation_overlays(
            torch.stack(pictures[:8]),
            torch.stack(predictions[:8]),
            folder / "overlays.png",
            names,
            torch.stack(truths[:8]) if truths else None,
        )
    if masks is not None:
        from caekit.evaluate.segmentation import SegmentationScores

        scores = SegmentationScores(confusion, names)
        atomic_write_text(folder / "scores.json", json.dumps(scores.as_dict(), indent=1))
        pixviz.iou_bars(scores.iou, folder / "iou.png")
        return Written(written, "masks", overlays, folder, {"mean_IoU": scores.mean_iou, "pixel_accuracy": scores.pixel_accuracy})
    return Written(written, "masks", overlays, folder)


def _truth_mask(masks: Path, stem: str, pred: Tensor) -> Tensor:
    found = [p for p in masks.iterdir() if p.stem == stem and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not found:
        raise DataError(f"no mask named '{stem}.*' in '{masks}'")
    truth = torch.from_numpy(np.asarray(read_mask(found[0]), dtype=np.uint8).copy())
    if truth.shape != pred.shape:
        raise DataError(f"mask '{found[0]}' is {truth.shape[1]}x{truth.shape[0]}, its image {pred.shape[1]}x{pred.shape[0]}")
    return truth


def upscale_files(images: Sequence[str | Path], run: str | Path, out: str | Path | None = None) -> Written:
    """Upscale image files by the model's scale: ``NAME_xS.png``, ``NAME_bicubic.png`` and ``comparison.png`` (the
    comparison only when the images share one size); ``out`` defaults to ``upscaled/`` in the run folder."""
    folder = _out(out, run, "upscaled")
    model, meta = inference.load(run)
    scale = model_scale(model)
    stems = _stems(images)
    check_outputs(images, [folder / f"{s}_{kind}.png" for s in stems for kind in (f"x{scale}", "bicubic")])
    channels = int(meta["image_shape"][0])
    folder.mkdir(parents=True, exist_ok=True)
    lows, bases, outputs, written = [], [], [], []
    for path, stem in zip(images, stems):
        low = to_unit(inference.read_file(path, channels))
        output, base = inference.upscale(model, low), bicubic(low[None], scale)[0]
        written.append(inference.save_png(output, folder / f"{stem}_x{scale}.png"))
        inference.save_png(base, folder / f"{stem}_bicubic.png")
        lows.append(low)
        bases.append(base)
        outputs.append(output)
    picture: Path | str = "no comparison (the images differ in size)"
    if len({tuple(i.shape) for i in lows}) == 1:
        picture = pixviz.superres_rows(
            torch.stack(lows), torch.stack(bases), torch.stack(outputs), None, folder / "comparison.png", title=f"x{scale}"
        )
    return Written(written, f"images upscaled x{scale}", picture, folder)


__all__ = [
    "Encoded",
    "check_outputs",
    "cluster_split",
    "denoise_files",
    "embed_split",
    "encode_split",
    "feature_maps_file",
    "reconstruct_files",
    "sample_files",
    "segment_files",
    "upscale_files",
]
