"""Classification and clustering scores against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caekit.data.imageset import ImageSet
from caekit.evaluate.classification import classification_report, most_confused, warn_small_classes
from caekit.evaluate.cluster import cluster, cluster_accuracy, cluster_scores, compare_clusterings
from caekit.training.supervised import balanced_class_weights, balanced_sample_weights


def test_classification_report_matches_hand_computed_values() -> None:
    # class 0: 3 images, 2 right, one called 1; class 1: 2 images, both right; class 2: 1 image, called 1
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 1, 1]
    report = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert report.accuracy == pytest.approx(4 / 6)
    per = {r["class"]: r for r in report.per_class}
    assert per["a"]["precision"] == pytest.approx(1.0) and per["a"]["recall"] == pytest.approx(2 / 3)
    assert per["a"]["f1"] == pytest.approx(0.8)
    assert per["b"]["precision"] == pytest.approx(2 / 4) and per["b"]["recall"] == pytest.approx(1.0)
    assert per["b"]["f1"] == pytest.approx(2 / 3)
    assert per["c"]["precision"] == 0 and per["c"]["recall"] == 0 and per["c"]["f1"] == 0  # never predicted: 0, no crash
    assert report.macro["precision"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert report.macro["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert report.macro["f1"] == pytest.approx((0.8 + 2 / 3 + 0) / 3)
    assert report.weighted["f1"] == pytest.approx((3 * 0.8 + 2 * 2 / 3 + 0) / 6)
    np.testing.assert_array_equal(report.confusion, [[2, 1, 0], [0, 2, 0], [0, 1, 0]])
    assert report.confused_pairs == [("a", "b", 1), ("c", "b", 1)] or report.confused_pairs == [("c", "b", 1), ("a", "b", 1)]
    assert "macro avg" in report.to_markdown()


def test_macro_average_ignores_classes_absent_from_the_test_labels() -> None:
    report = classification_report([0, 0, 1], [0, 0, 1], ["a", "b", "never"])
    assert report.macro["f1"] == pytest.approx(1.0)
    assert report.confusion.shape == (3, 3)


def test_most_confused_orders_off_diagonal_cells() -> None:
    cm = np.array([[50, 3, 9], [1, 40, 0], [7, 0, 30]])
    assert most_confused(cm, ["x", "y", "z"], top=3) == [("x", "z", 9), ("z", "x", 7), ("x", "y", 3)]
    assert most_confused(np.eye(3, dtype=int) * 5, ["x", "y", "z"]) == []


def test_cluster_accuracy_uses_the_best_one_to_one_matching() -> None:
    # clusters are a relabelling of the classes: perfect
    assert cluster_accuracy([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1]) == 1.0
    # contingency (cluster x class): c0 = {0,0,1}, c1 = {1,1,2}, c2 = {2}; best map c0->0, c1->1, c2->2: 2 + 2 + 1 = 5 of 7
    y_true = [0, 0, 1, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 1, 2]
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 7)
    # majority vote per cluster would give 6/7 here (two clusters both called class 1); one-to-one gives 4/7
    assert cluster_accuracy([1, 1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 2, 2]) == pytest.approx(4 / 7)
    # more clusters than classes: the extra cluster's points count as wrong
    assert cluster_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == pytest.approx(2 / 4)


def test_cluster_scores_and_methods_on_separated_blobs() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    labels = np.repeat(np.arange(3), 30)
    points = centres[labels] + rng.normal(0, 0.5, (90, 2))
    for method in ("kmeans", "agglomerative", "gmm"):
        scores = cluster_scores(labels, cluster(points, 3, method))
        assert scores == pytest.approx({"nmi": 1.0, "ari": 1.0, "accuracy": 1.0})
    shuffled = cluster_scores(labels, rng.permutation(labels))
    assert shuffled["ari"] < 0.1 and shuffled["accuracy"] < 0.6


def test_compare_clusterings_scores_codes_pixels_and_pca_on_digits() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels, labels = digits.images[:400], digits.target[:400]
    rows = compare_clusterings(pixels.reshape(400, -1), pixels, labels, methods=("kmeans",), pca_dims=20)
    assert [r.features for r in rows] == ["codes", "pixels", "pca20(pixels)"]
    assert rows[0].nmi == pytest.approx(rows[1].nmi)  # the "codes" here are the pixels: the same clustering
    assert all(0.5 < r.nmi <= 1 and 0.5 < r.accuracy <= 1 for r in rows)  # digits cluster well above chance (0.1)


def test_balanced_weights() -> None:
    weights = balanced_class_weights([6, 2, 0, 4])
    assert weights.tolist() == pytest.approx([12 / (3 * 6), 12 / (3 * 2), 0.0, 12 / (3 * 4)])
    labels = torch.tensor([0, 0, 0, 1])
    sample = balanced_sample_weights(labels, 2)
    assert sample.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    # each class carries the same total sampling mass
    assert sample[labels == 0].sum() == pytest.approx(sample[labels == 1].sum())


def test_small_classes_are_warned_about_not_fatal() -> None:
    data = ImageSet(torch.zeros(5, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 0, 0, 1, 2]), ["big", "tiny", "lone"], "toy")
    with pytest.warns(UserWarning, match="fewer than 2 images"):
        small = warn_small_classes(data, 2, "a validation split")
    assert small == [("tiny", 1), ("lone", 1)]
