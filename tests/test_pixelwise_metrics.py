"""Segmentation metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from caekit.evaluate.segmentation import SegmentationScores, evaluate_segmentation
from caekit.metrics import confusion_matrix, per_image_scores

TRUTH = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 1], [255, 2, 2, 0]])
PRED = torch.tensor([[0, 1, 1, 1], [0, 2, 1, 1], [2, 2, 0, 0]])


def test_confusion_and_iou_by_hand() -> None:
    cm = confusion_matrix(PRED, TRUTH, 3)
    # rows truth, columns prediction; the ignored pixel (255) is not counted
    assert cm.tolist() == [[3, 1, 0], [0, 3, 0], [1, 1, 2]]
    scores = SegmentationScores(cm, ["bg", "a", "b"])
    # class 0: TP 3, FP 1 (truth 2 predicted 0), FN 1 -> 3/5; class 1: TP 3, FP 2, FN 0 -> 3/5; class 2: 2/(2+0+2) = 1/2
    assert scores.iou == pytest.approx({"bg": 0.6, "a": 0.6, "b": 0.5})
    assert scores.mean_iou == pytest.approx((0.6 + 0.6 + 0.5) / 3)
    assert scores.pixel_accuracy == pytest.approx(8 / 11)
    assert scores.class_accuracy == pytest.approx({"bg": 0.75, "a": 1.0, "b": 0.5})


def test_absent_classes_are_left_out_of_the_mean() -> None:
    scores = SegmentationScores(confusion_matrix(PRED, TRUTH, 5), list("01234"))
    assert math.isnan(scores.iou["3"]) and math.isnan(scores.iou["4"])
    assert scores.mean_iou == pytest.approx((0.6 + 0.6 + 0.5) / 3)


def test_per_image_scores_by_hand() -> None:
    pred = torch.stack([PRED, torch.zeros_like(PRED)])
    truth = torch.stack([TRUTH, torch.zeros_like(TRUTH)])
    accuracy, iou = per_image_scores(pred, truth, 3)
    assert accuracy.tolist() == pytest.approx([8 / 11, 1.0])
    assert iou.tolist() == pytest.approx([(0.6 + 0.6 + 0.5) / 3, 1.0])  # image 2: only class 0, perfectly


def test_split_scores_accumulate_over_batches() -> None:
    class Oracle(torch.nn.Module):
        """Predicts class 1 where the first channel is above 0.5."""

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([0.5 - x[:, :1], x[:, :1] - 0.5], 1)

    images = torch.tensor([[[[0, 255], [255, 0]]], [[[255, 255], [0, 0]]], [[[0, 0], [0, 0]]]], dtype=torch.uint8)
    masks = torch.tensor([[[0, 1], [1, 1]], [[1, 1], [0, 0]], [[0, 0], [0, 1]]])
    scores = evaluate_segmentation(Oracle(), images, masks, ["bg", "fg"], batch_size=2)
    assert scores.confusion.tolist() == [[6, 0], [2, 4]]
    assert scores.iou == pytest.approx({"bg": 6 / 8, "fg": 4 / 6})
