"""Classification scores: accuracy, per-class and averaged precision/recall/F1, confusion matrix, confused pairs.

Everything is scikit-learn's (``zero_division=0``: a class never predicted has precision 0, not a crash).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from caekit.data.imageset import ImageSet


@dataclass
class ClassificationReport:
    accuracy: float
    macro: dict[str, float]  # precision, recall, f1: unweighted mean over classes
    weighted: dict[str, float]  # the same weighted by each class's support
    per_class: list[dict[str, Any]]  # class, precision, recall, f1, support
    confusion: np.ndarray  # [true, predicted] counts
    classes: list[str]
    confused_pairs: list[tuple[str, str, int]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """The four numbers of the comparison table."""
        return {
            "accuracy": self.accuracy,
            "precision": self.macro["precision"],
            "recall": self.macro["recall"],
            "f1": self.macro["f1"],
            "weighted_f1": self.weighted["f1"],
        }

    def to_markdown(self, top: int | None = None) -> str:
        rows = sorted(self.per_class, key=lambda r: -r["support"])[:top]
        lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['support']} |" for r in rows]
        for name, avg in (("macro avg", self.macro), ("weighted avg", self.weighted)):
            lines.append(
                f"| **{name}** | {avg['precision']:.3f} | {avg['recall']:.3f} | {avg['f1']:.3f} | {int(self.confusion.sum())} |"
            )
        lines.append(f"\naccuracy {self.accuracy:.4f}")
        if self.confused_pairs:
            lines.append(
                "most confused (true -> predicted: count): " + "; ".join(f"{t} -> {p}: {n}" for t, p, n in self.confused_pairs)
            )
        return "\n".join(lines)


def most_confused(confusion: np.ndarray, classes: list[str], top: int = 10) -> list[tuple[str, str, int]]:
    """The largest off-diagonal cells of a confusion matrix, as (true class, predicted class, count)."""
    off = np.array(confusion, dtype=np.int64, copy=True)
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:top]
    pairs = []
    for flat in order:
        t, p = np.unravel_index(flat, off.shape)
        if off[t, p] == 0:
            break
        pairs.append((classes[t], classes[p], int(off[t, p])))
    return pairs


def classification_report(y_true: Any, y_pred: Any, classes: list[str], top_pairs: int = 10) -> ClassificationReport:
    """Scores of predicted labels against true ones, over all ``classes`` (absent ones included in the matrix).

    Macro averages are taken over the classes present in ``y_true`` (a class with no test image has no recall).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.arange(len(classes))
    present = np.unique(y_true)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    averages = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average=avg, zero_division=0)
        averages[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    per_class = [
        {"class": c, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, c in enumerate(classes)
    ]
    return ClassificationReport(
        float(accuracy_score(y_true, y_pred)),
        averages["macro"],
        averages["weighted"],
        per_class,
        cm,
        list(classes),
        most_confused(cm, list(classes), top_pairs),
    )


def small_classes(data: ImageSet, minimum: int = 2) -> list[tuple[str, int]]:
    """Classes with fewer than ``minimum`` images (but at least one)."""
    return [(data.classes[i], n) for i, n in enumerate(data.class_counts()) if 0 < n < minimum]


def warn_small_classes(data: ImageSet, minimum: int, what: str) -> list[tuple[str, int]]:
    """Warn (not fail) about classes too small for ``what``; returns them."""
    small = small_classes(data, minimum)
    if small:
        names = ", ".join(f"{name} ({n})" for name, n in small[:6]) + (" ..." if len(small) > 6 else "")
        warnings.warn(
            f"{len(small)} classes of '{data.name}' have fewer than {minimum} images for {what}: {names}; "
            "their scores rest on very few images",
            stacklevel=2,
        )
    return small


def evaluate_classifier(model: Any, data: ImageSet, batch_size: int = 512, top_pairs: int = 10) -> ClassificationReport:
    """Predict a whole split with a trained classifier and score it."""
    from caekit.inference import classify

    predicted, _ = classify(model, data, batch_size)
    return classification_report(data.labels.numpy(), predicted.numpy(), data.classes, top_pairs)


def linear_probe(
    train_codes: np.ndarray, train_labels: Any, test_codes: np.ndarray, test_labels: Any, classes: list[str], max_iter: int = 1000
) -> ClassificationReport:
    """Logistic regression on standardised codes (scikit-learn): how linearly separable the classes are in a code."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # convergence chatter; max_iter bounds the cost
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter)).fit(train_codes, np.asarray(train_labels))
    return classification_report(test_labels, probe.predict(test_codes), classes)


__all__ = [
    "ClassificationReport",
    "classification_report",
    "evaluate_classifier",
    "linear_probe",
    "most_confused",
    "small_classes",
    "warn_small_classes",
]
