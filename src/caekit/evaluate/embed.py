"""Codes in two dimensions (t-SNE, PCA) and the TensorBoard Embedding Projector bundle.

The bundle is written by TensorBoard's own ``SummaryWriter.add_embedding``: ``projector_config.pbtxt`` in the
folder and, under ``00000/<tag>/``, ``tensors.tsv`` (one row of D numbers per image), ``metadata.tsv`` (a header,
then label and class per image), and ``sprite.png`` (a square grid of the images, ``ceil(sqrt(N))`` a side).
``tensorboard --logdir FOLDER`` shows it under "Projector"; the TSVs also load on projector.tensorflow.org.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from caekit.data.imageset import ImageSet, to_unit
from caekit.errors import ConfigError
from caekit.inference import encode

MAP_METHODS = ("tsne", "pca")
SPRITE_LIMIT = 8192  # the projector refuses sprites larger than 8192 px a side


def subsample(n: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded subset of at most ``max_points`` of ``n`` items (all when None or fewer)."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def map_2d(codes: np.ndarray, method: str = "tsne", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """Two coordinates per row of ``codes``: t-SNE (PCA-initialised, codes first reduced to 50 PCs) or PCA."""
    if method not in MAP_METHODS:
        raise ConfigError(f"unknown map '{method}'; choose one of: {', '.join(MAP_METHODS)}")
    x = np.asarray(codes, dtype=np.float32).reshape(len(codes), -1)
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(x)
    if len(x) < 5:
        raise ConfigError(f"t-SNE needs at least 5 points, got {len(x)}")
    if x.shape[1] > 50:  # the usual t-SNE preprocessing: faster, and removes noise dimensions
        x = PCA(min(50, len(x)), random_state=seed).fit_transform(x)
    perplexity = min(perplexity, (len(x) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed).fit_transform(x)


def map_note(codes: np.ndarray, method: str, perplexity: float = 30.0) -> str:
    """What a map's axes mean: the variance the two principal components explain, or t-SNE's perplexity."""
    x = np.asarray(codes, dtype=np.float32).reshape(len(codes), -1)
    if method == "pca":
        ratio = PCA(2).fit(x).explained_variance_ratio_
        return f"PC1 {ratio[0]:.1%}, PC2 {ratio[1]:.1%} of the variance"
    return f"perplexity {min(perplexity, (len(x) - 1) / 3):g}, PCA to {min(50, x.shape[1], len(x))} dims first; distances between clusters mean little"


def export_projector(
    codes: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    folder: str | Path,
    images: torch.Tensor | None = None,
    tag: str = "codes",
) -> dict[str, Path]:
    """Write the Embedding Projector bundle for ``codes`` [N, D] (and thumbnails from ``images`` [N, C, H, W])."""
    from torch.utils.tensorboard import SummaryWriter

    folder = Path(folder)
    if images is not None:
        side = math.ceil(math.sqrt(len(images))) * images.shape[-1]
        if side > SPRITE_LIMIT:
            raise ConfigError(
                f"a sprite of {len(images)} images of {images.shape[-1]} px would be {side} px a side, over "
                f"the projector's {SPRITE_LIMIT}; export fewer points (max_points)"
            )
        images = to_unit(images)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
    metadata = [[str(int(label)), classes[int(label)]] for label in labels]
    writer = SummaryWriter(str(folder))
    try:
        writer.add_embedding(
            torch.as_tensor(np.asarray(codes, dtype=np.float32)),
            metadata=metadata,
            label_img=images,
            tag=tag,
            metadata_header=["label", "class"],
        )
    finally:
        writer.close()
    sub = folder / "00000" / tag
    paths = {"config": folder / "projector_config.pbtxt", "tensors": sub / "tensors.tsv", "metadata": sub / "metadata.tsv"}
    if images is not None:
        paths["sprite"] = sub / "sprite.png"
    return paths


@dataclass
class Embedding:
    codes: np.ndarray
    labels: np.ndarray
    classes: list[str]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def embed(
    model: torch.nn.Module,
    data: ImageSet,
    out: str | Path,
    methods: tuple[str, ...] = MAP_METHODS,
    max_points: int | None = 5000,
    projector: bool = True,
    thumbnails: int = 0,
    seed: int = 0,
    batch_size: int = 512,
    progress: bool = True,
) -> Embedding:
    """Encode ``data`` (batched, no gradients), draw a 2-D map per method and export the projector bundle.

    ``max_points`` draws a seeded subset for the maps and the bundle (t-SNE is quadratic-ish; the sprite is capped);
    ``thumbnails`` > 0 puts that many image thumbnails on the maps.
    """
    from caekit.viz.representations import scatter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pick = subsample(len(data), max_points, seed)
    subset = data.subset(pick)
    codes = encode(model, subset, batch_size=batch_size, progress=progress)
    labels = subset.labels.numpy()
    result = Embedding(codes, labels, data.classes)
    np.savez(out / "codes.npz", codes=codes, labels=labels, classes=np.array(data.classes), indices=pick)
    result.paths["codes"] = out / "codes.npz"
    for method in methods:
        xy = map_2d(codes, method, seed)
        result.maps[method] = xy
        title = f"{method.upper() if method == 'pca' else 't-SNE'} of {codes.shape[1]}-d codes, {len(codes)} {data.name} images\n{map_note(codes, method)}"
        result.paths[method] = scatter(
            xy,
            labels,
            data.classes,
            out / f"{method}.png",
            title=title,
            images=subset.pixels() if thumbnails else None,
            thumbnails=thumbnails,
            seed=seed,
        )
    if projector:
        result.paths.update(export_projector(codes, labels, data.classes, out / "projector", subset.pixels()))
    return result


def check_projector(folder: str | Path) -> dict[str, object]:
    """Read a bundle back the way the projector does and check that its parts agree; returns what was found.

    Raises ``ConfigError`` naming the first mismatch (rows of tensors vs metadata, sprite size vs image count).
    """
    from google.protobuf import text_format
    from PIL import Image
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    folder = Path(folder)
    config = text_format.Parse((folder / "projector_config.pbtxt").read_text(), ProjectorConfig())
    found: dict[str, object] = {"embeddings": len(config.embeddings)}
    for emb in config.embeddings:
        tensors = np.loadtxt(folder / emb.tensor_path, delimiter="\t", ndmin=2)
        meta_lines = (folder / emb.metadata_path).read_text().rstrip("\n").split("\n")
        header = meta_lines[0].split("\t")
        rows = meta_lines[1:] if len(header) > 1 else meta_lines
        if len(rows) != len(tensors):
            raise ConfigError(f"{emb.tensor_name}: {len(tensors)} tensor rows but {len(rows)} metadata rows")
        found.update(points=len(tensors), dims=tensors.shape[1], header=header)
        if emb.sprite.image_path:
            with Image.open(folder / emb.sprite.image_path) as sprite:
                size = sprite.size
            h, w = emb.sprite.single_image_dim
            per_side = math.ceil(math.sqrt(len(tensors)))
            if size[0] != size[1] or size[0] < per_side * w or size[0] > SPRITE_LIMIT:
                raise ConfigError(f"{emb.tensor_name}: sprite {size} does not hold {len(tensors)} images of {w}x{h}")
            found.update(sprite=size, thumb=(h, w))
    return found


__all__ = ["Embedding", "check_projector", "embed", "export_projector", "map_2d", "subsample"]
