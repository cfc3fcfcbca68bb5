"""Augmentation of training batches (torchvision transforms v2): each image its own draw, off for autoencoders by
default, exact on resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import caekit
from caekit.data.augment import batch_augmenter, resolve
from caekit.data.datasets import load_dataset
from caekit.errors import ConfigError


def test_auto_augments_classifiers_only_and_picks_by_channels() -> None:
    assert resolve("auto", "reconstruct", 1) == "none" and resolve("auto", "denoise", 3) == "none"
    assert resolve("auto", "classify", 1) == "digits" and resolve("auto", "classify", 3) == "natural"
    assert resolve("natural", "reconstruct", 1) == "natural"
    with pytest.raises(ConfigError, match=r"unknown data\.augment"):
        resolve("heavy", "classify", 1)


def test_each_image_gets_its_own_draw_and_a_seed_repeats_them() -> None:
    digit = load_dataset("digits", image_size=16).images[:1]
    batch = digit.repeat(8, 1, 1, 1)
    augment = batch_augmenter("digits", "classify", (1, 16, 16))
    assert augment is not None
    torch.manual_seed(0)
    first = augment(batch)
    assert first.dtype == torch.uint8 and first.shape == batch.shape
    assert len({bytes(image.numpy()) for image in first}) == 8  # eight copies of one digit, eight different augmentations
    torch.manual_seed(0)
    assert torch.equal(augment(batch), first)
    assert batch_augmenter("auto", "reconstruct", (1, 16, 16)) is None


CLASSIFIER = {
    "model": {"name": "lenet5"},
    "objective": {"name": "classify"},
    "data": {"name": "digits", "image_size": 28, "limit": 300, "augment": "digits"},
    "train": {"epochs": 2, "batch_size": 32, "progress": False, "verbose": False},
}


def test_resume_with_augmentation_is_exact(tmp_path: Path) -> None:
    straight = caekit.train({**CLASSIFIER, "name": "straight", "runs_dir": str(tmp_path)})

    def stop_after_one(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        caekit.train({**CLASSIFIER, "name": "killed", "runs_dir": str(tmp_path)}, on_epoch_end=stop_after_one)
    resumed = caekit.train(resume=tmp_path / "killed")
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_augmentation_changes_what_a_classifier_sees(tmp_path: Path) -> None:
    plain = caekit.train(
        {**CLASSIFIER, "name": "plain", "runs_dir": str(tmp_path), "data": {**CLASSIFIER["data"], "augment": "none"}}
    )
    augmented = caekit.train({**CLASSIFIER, "name": "aug", "runs_dir": str(tmp_path)})
    assert plain.history[0]["train_loss"] != augmented.history[0]["train_loss"]
    assert plain.history[0]["val_loss"] != augmented.history[0]["val_loss"]
