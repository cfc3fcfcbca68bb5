"""The one run assembly and the one inference layer: a run's own splits, settings that mean what they say, old
checkpoints, the same files in every run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import caekit
from caekit.checkpoint import read_checkpoint
from caekit.cli import main
from caekit.config import OptimConfig, TrainConfig
from caekit.errors import ConfigError
from caekit.inference import load, reconstruct, run_splits
from caekit.models import create_model
from caekit.runner import engine_for
from caekit.training.gan import GAN
from caekit.workflows.compare import run_compare

DATA = Path(__file__).parent / "data"
TINY = {
    "model": {"name": "cae28", "args": {"upsample": "nearest"}},
    "data": {"name": "digits"},
    "train": {"epochs": 1, "batch_size": 64, "progress": False, "verbose": False},
}


def _run(tmp_path: Path, name: str, **sections: dict) -> caekit.TrainResult:
    config = {**TINY, "name": name, "runs_dir": str(tmp_path)}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return caekit.train(config)


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(image.numpy()) for image in images}


def test_a_runs_test_codes_never_include_its_training_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # digits has no test split of its own: the run carves one with its train.seed (3 here, not the default 0)
    result = _run(tmp_path, "seeded", train={"seed": 3}, data={"test_fraction": 0.25})
    again = run_splits(result.run.path)
    assert torch.equal(again.test.images, result.splits.test.images) and torch.equal(
        again.train.images, result.splits.train.images
    )
    assert not _rows(again.test.images) & (_rows(result.splits.train.images) | _rows(result.splits.val.images))

    for split, part in (("test", result.splits.test), ("train", result.splits.train), ("val", result.splits.val)):
        out = tmp_path / f"{split}.npz"
        main(["encode", "--model", str(result.run.path), "--split", split, "--out", str(out)])
        saved = np.load(out)
        assert len(saved["codes"]) == len(part)
        assert np.array_equal(saved["labels"], part.labels.numpy())
    model, _ = load(result.run.path)
    expected = caekit.encode(model, result.splits.test)
    assert np.allclose(np.load(tmp_path / "test.npz")["codes"], expected, atol=1e-6)
    # embed draws on the same splits: its train codes are the run's training images, not all of digits
    main(
        [
            "embed",
            "--model",
            str(result.run.path),
            "--split",
            "train",
            "--out",
            str(tmp_path / "emb"),
            "--method",
            "pca",
            "--no-projector",
            "--max-points",
            "100000",
        ]
    )
    assert len(np.load(tmp_path / "emb" / "codes.npz")["codes"]) == len(result.splits.train)
    capsys.readouterr()


def test_runs_on_in_memory_splits_refuse_to_guess_their_test_images(tmp_path: Path) -> None:
    from caekit.config import parse_config
    from caekit.data.splits import Splits, make_splits
    from caekit.errors import DataError
    from caekit.runner import train_run

    splits = make_splits("digits", limit=300)
    result = train_run(parse_config({**TINY, "name": "mem", "runs_dir": str(tmp_path)}), Splits(splits.train, None, splits.test))
    with pytest.raises(DataError, match="in memory"):
        run_splits(result.run.path)


def test_every_run_folder_has_the_same_files(tmp_path: Path) -> None:
    """A compare run (in-memory splits) leaves what a plain run does: results.json with its monitor, pictures."""
    plain = _run(tmp_path, "plain").run.path
    config = {
        "name": "cmp",
        "runs_dir": str(tmp_path),
        "data": {"name": "digits", "image_size": 28},
        "sample": {"per_class": 10},
        "seeds": [0],
        "train": {"epochs": 2, "batch_size": 32, "progress": False, "verbose": False},
        "models": [{"label": "LeNet-5", "model": {"name": "lenet5"}}],
    }
    run_compare(config, progress=None)
    compared = next((tmp_path / "cmp" / "runs").iterdir())
    for run in (plain, compared):
        for name in ("config.yaml", "metrics.csv", "results.json", "curves.png", "filters.png", "checkpoints/best.safetensors"):
            assert (run / name).is_file(), f"{run.name}: {name}"
    results = json.loads((compared / "results.json").read_text())
    assert results["monitor"] == "val_accuracy" and results["monitor_mode"] == "max" and results["best_epoch"] in (1, 2)
    assert {"loss", "accuracy"} <= set(results["test"])
    assert json.loads((plain / "results.json").read_text())["monitor"] == "val_loss"


# ------------------------------------------------------------------------------------------- optimiser settings


def _gan_engine(optim: OptimConfig):
    model = create_model("dcgan", input_shape=(1, 28, 28), latent_dim=8, width=8)
    return engine_for(model, GAN(), TrainConfig(device="cpu", progress=False), optim)


def test_an_explicit_optimiser_setting_wins_over_the_objectives_default() -> None:
    default = _gan_engine(OptimConfig())
    for optimizer in default.optimizers.values():
        group = optimizer.param_groups[0]
        assert group["lr"] == 2e-4 and group["betas"] == (0.5, 0.999) and group["weight_decay"] == 0.0
    chosen = _gan_engine(OptimConfig(lr=1e-3, betas=(0.9, 0.99)))
    for optimizer in chosen.optimizers.values():
        group = optimizer.param_groups[0]
        assert group["lr"] == 1e-3 and group["betas"] == (0.9, 0.99) and group["weight_decay"] == 0.0  # the rest stays the GAN's
    assert OptimConfig().resolved().model_dump() == {
        "name": "adam",
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "weight_decay": 5e-4,
        "momentum": 0.9,
    }


def test_the_run_folder_records_the_resolved_optimiser(tmp_path: Path) -> None:
    import yaml

    result = caekit.train(
        {
            "name": "gan",
            "runs_dir": str(tmp_path),
            "model": {"name": "dcgan", "args": {"latent_dim": 8, "width": 8}},
            "objective": {"name": "gan"},
            "data": {"name": "digits", "image_size": 28, "limit": 128},
            "train": {"epochs": 1, "progress": False, "verbose": False},
        }
    )
    config = yaml.safe_load((result.run.path / "config.yaml").read_text())
    assert config["optim"]["lr"] == 2e-4 and config["optim"]["betas"] == [0.5, 0.999]


def test_resume_applies_a_changed_learning_rate(tmp_path: Path) -> None:
    first = _run(tmp_path, "lr", train={"epochs": 2})
    resumed = caekit.train(resume=first.run.path, overrides=["train.epochs=3", "optim.lr=2.5e-4", "optim.weight_decay=0"])
    assert resumed.history[-1]["lr"] == pytest.approx(2.5e-4)
    _, meta = read_checkpoint(first.run.checkpoint("last"))
    group = meta["optimizers"]["model"]["param_groups"][0]
    assert group["lr"] == pytest.approx(2.5e-4) and group["weight_decay"] == 0 and meta["optim"]["lr"] == 2.5e-4


def test_resume_scales_a_scheduled_learning_rate(tmp_path: Path) -> None:
    first = _run(tmp_path, "step", train={"epochs": 2, "scheduler": "step", "step_size": 1, "gamma": 0.5})
    assert [row["lr"] for row in first.history] == pytest.approx([1e-3, 5e-4])
    resumed = caekit.train(resume=first.run.path, overrides=["train.epochs=3", "optim.lr=1e-2"])
    assert resumed.history[-1]["lr"] == pytest.approx(2.5e-3)  # the schedule goes on, from the new base rate


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["train.scheduler=cosine"], r"train\.scheduler"),
        (["train.gamma=0.9"], r"train\.gamma"),
        (["optim.name=sgd"], r"optim\.name"),
    ],
)
def test_resume_refuses_a_changed_schedule_naming_the_field(tmp_path: Path, overrides: list[str], field: str) -> None:
    first = _run(tmp_path, "sched", train={"epochs": 1, "scheduler": "step", "step_size": 1, "gamma": 0.5})
    with pytest.raises(ConfigError, match=field):
        caekit.train(resume=first.run.path, overrides=["train.epochs=2", *overrides])


def test_resume_refuses_a_longer_cosine_schedule(tmp_path: Path) -> None:
    first = _run(tmp_path, "cos", train={"epochs": 1, "scheduler": "cosine"})
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        caekit.train(resume=first.run.path, overrides=["train.epochs=2"])


# ------------------------------------------------------------------------------------------- old checkpoints


def test_a_checkpoint_written_before_the_redesign_still_loads_and_reconstructs() -> None:
    """tests/data holds a cae28 checkpoint trained by caekit 0.1 before the run assembly and the inference layer."""
    model, meta = load(DATA / "cae28-digits-8x8-v0.1.safetensors")
    assert meta["format"] == "caekit-checkpoint-1" and "splits" not in meta
    expected = np.load(DATA / "cae28-digits-8x8-v0.1-expected.npz")
    out = reconstruct(model, torch.from_numpy(expected["images"]))
    assert out.shape == (4, 1, 8, 8)
    assert np.allclose(out.numpy(), expected["reconstructions"], atol=1e-5)
