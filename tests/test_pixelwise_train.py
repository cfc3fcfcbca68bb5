"""Short real training runs (segmentation, super-resolution) whose loss falls, and the segment/upscale commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from caekit.api import train
from caekit.cli import main
from caekit.config import OptimConfig, TrainConfig
from caekit.data import load_dataset
from caekit.data.canvas import DIGIT_CLASSES, make_canvases
from caekit.data.imageset import ImageSet
from caekit.errors import ConfigError
from caekit.models import create_model
from caekit.training.engine import Engine
from caekit.training.objectives import build_objective

pytestmark = pytest.mark.usefixtures("one_thread")  # small models: one thread beats two on 2 cores


def _scan_canvases(count: int, size: int = 48, seed: int = 0) -> ImageSet:
    """Canvases of sklearn's real 8x8 digit scans (3x upscaled), with their masks."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    digits = np.rint(np.kron(bunch.images, np.ones((3, 3))) * (255 / 16)).astype(np.uint8)
    images, masks, first = make_canvases(digits, bunch.target, count, size, max_digits=3, seed=seed)
    return ImageSet(
        torch.from_numpy(images)[:, None],
        torch.from_numpy(first),
        list(DIGIT_CLASSES),
        "scan-canvas",
        {"mask": torch.from_numpy(masks)},
    )


def _fit(
    model_name: str, objective: str, data: ImageSet, epochs: int, lr: float = 2e-3, **model_args: object
) -> tuple[list, Engine]:
    torch.manual_seed(0)
    model = create_model(model_name, input_shape=data.shape, **model_args)
    engine = Engine(
        model,
        build_objective(objective),
        TrainConfig(epochs=epochs, batch_size=16, progress=False, device="cpu"),
        OptimConfig(lr=lr),
    )
    return engine.fit(data), engine


def test_unet_segmentation_loss_falls() -> None:
    data = _scan_canvases(192)
    history, engine = _fit("unet", "segment", data, epochs=3, width=8, depth=2)
    losses = [row["train_loss"] for row in history]
    assert losses[2] < losses[1] < losses[0] and losses[-1] < 0.9 * losses[0]
    scores = engine.evaluate(data)
    assert {"loss", "pixel_accuracy", "iou"} <= set(scores) and 0 < scores["iou"] <= 1


def test_unet_superres_loss_falls_and_beats_bicubic(cifar_sample: Path) -> None:
    data = load_dataset("cifar10", "test", root=cifar_sample).subset(range(0, 1000, 3))
    history, engine = _fit("unet", "superres", data, epochs=3, task="superres", scale=2, width=8, depth=2)
    losses = [row["train_loss"] for row in history]
    assert losses[-1] < losses[0]
    scores = engine.evaluate(data)
    assert scores["psnr"] > scores["bicubic_psnr"] and scores["psnr_gain"] > 0


def test_objectives_refuse_what_they_cannot_train() -> None:
    segment = build_objective("segment")
    model = create_model("unet", input_shape=(1, 16, 16), width=4, depth=2)
    with pytest.raises(ConfigError, match="masks"):
        segment.loss(model, {"image": torch.rand(2, 1, 16, 16)})
    with pytest.raises(ConfigError, match=r"model\.args\.classes"):
        segment.loss(model, {"image": torch.rand(2, 1, 16, 16), "mask": torch.full((2, 16, 16), 12, dtype=torch.uint8)})
    with pytest.raises(ConfigError, match="super-resolution model"):
        build_objective("superres").loss(model, {"image": torch.rand(2, 1, 16, 16)})


def _write_mask_folder(root: Path, data: ImageSet) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(len(data)):
        Image.fromarray(data.images[i, 0].numpy()).save(root / "images" / f"c{i:03d}.png")
        Image.fromarray(data.extras["mask"][i].numpy()).save(root / "masks" / f"c{i:03d}.png")
    (root / "classes.txt").write_text("\n".join(DIGIT_CLASSES))


def test_segment_command_on_a_trained_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_mask_folder(tmp_path / "pairs", _scan_canvases(48, size=40, seed=1))
    config = {
        "name": "seg",
        "runs_dir": str(tmp_path / "runs"),
        "model": {"name": "segnet", "args": {"width": 4, "depth": 2}},
        "data": {"name": "mask-folder", "root": str(tmp_path / "pairs"), "val_fraction": 0.2},
        "objective": {"name": "segment", "args": {"dice": 0.5}},
        "train": {"epochs": 1, "batch_size": 16, "progress": False},
    }
    result = train(config)
    assert (result.run.path / "segmentation.png").is_file() and "iou" in result.test
    files = [str(tmp_path / "pairs" / "images" / f"c{i:03d}.png") for i in range(3)]
    main(
        [
            "segment",
            *files,
            "--model",
            str(result.run.path),
            "--out",
            str(tmp_path / "out"),
            "--masks",
            str(tmp_path / "pairs" / "masks"),
        ]
    )
    out = tmp_path / "out"
    mask = np.asarray(Image.open(out / "c000_mask.png"))
    assert mask.shape == (40, 40) and mask.max() <= 10
    assert (out / "c000_overlay.png").is_file() and (out / "overlays.png").is_file() and (out / "iou.png").is_file()
    assert "mean IoU" in capsys.readouterr().out


@pytest.mark.slow
def test_upscale_command_on_a_trained_run(tmp_path: Path, cifar_sample: Path) -> None:
    config = {
        "name": "sr",
        "runs_dir": str(tmp_path / "runs"),
        "model": {"name": "fcn", "args": {"task": "superres", "scale": 2, "width": 4, "depth": 2}},
        "data": {"name": "cifar10", "root": str(cifar_sample), "limit": 100, "val_fraction": 0.2},
        "objective": {"name": "superres"},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
    }
    result = train(config)
    assert (result.run.path / "superres.png").is_file() and "bicubic_psnr" in result.test
    files = sorted((cifar_sample / "test" / "cat").glob("*.png"))[:2]
    main(["upscale", *map(str, files), "--model", str(result.run.path), "--out", str(tmp_path / "up")])
    up = Image.open(tmp_path / "up" / f"{files[0].stem}_x2.png")
    assert up.size == (64, 64) and (tmp_path / "up" / "comparison.png").is_file()
    with pytest.raises(SystemExit) as stop:  # a super-resolution model cannot segment: one-line error, status 2
        main(["segment", str(files[0]), "--model", str(result.run.path), "--out", str(tmp_path / "x")])
    assert stop.value.code == 2
