"""Clustering of codes, scored against labels: NMI, ARI and cluster accuracy (Hungarian matching).

``compare_clusterings`` runs the same methods (k-means, and agglomerative Ward or a Gaussian mixture) on the
encoder's codes, on raw pixels and on a PCA of the pixels, so the table says whether the codes help.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, confusion_matrix, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from caekit.errors import ConfigError

METHODS = ("kmeans", "agglomerative", "gmm")


def cluster_accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Best accuracy over one-to-one maps from clusters to classes (Hungarian algorithm on the contingency table).

    Clusters left without a class (more clusters than classes) count as wrong.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        return float("nan")
    _, true_idx = np.unique(y_true, return_inverse=True)
    _, pred_idx = np.unique(y_pred, return_inverse=True)
    table = confusion_matrix(pred_idx, true_idx, labels=np.arange(max(pred_idx.max(), true_idx.max()) + 1))
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(y_true))


def cluster_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "accuracy": cluster_accuracy(y_true, y_pred),
    }


def cluster(features: np.ndarray, k: int, method: str = "kmeans", seed: int = 0) -> np.ndarray:
    """Cluster labels for rows of ``features`` (standardised first, so no dimension dominates by scale)."""
    if method not in METHODS:
        raise ConfigError(f"unknown clustering '{method}'; choose one of: {', '.join(METHODS)}")
    if k < 2 or k > len(features):
        raise ConfigError(f"cannot make {k} clusters of {len(features)} points")
    x = StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))
    if method == "kmeans":
        return KMeans(k, n_init=10, random_state=seed).fit_predict(x)
    if method == "agglomerative":
        return AgglomerativeClustering(k, linkage="ward").fit_predict(x)
    if x.shape[1] > 64:  # a full-covariance mixture in hundreds of dimensions is ill-posed; fit it on the top PCs
        x = PCA(64, random_state=seed).fit_transform(x)
    return GaussianMixture(k, covariance_type="diag", n_init=2, random_state=seed).fit_predict(x)


@dataclass
class ClusterRow:
    features: str
    method: str
    dims: int
    nmi: float
    ari: float
    accuracy: float


def compare_clusterings(
    codes: np.ndarray,
    pixels: np.ndarray,
    labels: np.ndarray,
    k: int | None = None,
    methods: Sequence[str] = ("kmeans", "agglomerative"),
    pca_dims: int = 50,
    seed: int = 0,
    max_points: int | None = 5000,
) -> list[ClusterRow]:
    """The same clusterings on codes, raw pixels and PCA of pixels; ``max_points`` draws a seeded subset
    (agglomerative clustering needs memory quadratic in the number of points)."""
    labels = np.asarray(labels)
    k = k or len(np.unique(labels))
    if max_points is not None and len(labels) > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(len(labels), max_points, replace=False))
        codes, pixels, labels = codes[pick], pixels[pick], labels[pick]
    pixels = pixels.reshape(len(pixels), -1).astype(np.float32)
    spaces = {
        "codes": codes.reshape(len(codes), -1),
        "pixels": pixels,
        f"pca{pca_dims}(pixels)": PCA(min(pca_dims, *pixels.shape), random_state=seed).fit_transform(pixels),
    }
    rows = []
    for name, feats in spaces.items():
        for method in methods:
            scores = cluster_scores(labels, cluster(feats, k, method, seed))
            rows.append(ClusterRow(name, method, feats.shape[1], scores["nmi"], scores["ari"], scores["accuracy"]))
    return rows


def rows_to_markdown(rows: Sequence[ClusterRow]) -> str:
    lines = ["| features | dims | method | NMI | ARI | cluster accuracy |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.features} | {r.dims} | {r.method} | {r.nmi:.3f} | {r.ari:.3f} | {r.accuracy:.3f} |" for r in rows]
    return "\n".join(lines)


__all__ = ["METHODS", "ClusterRow", "cluster", "cluster_accuracy", "cluster_scores", "compare_clusterings", "rows_to_markdown"]
