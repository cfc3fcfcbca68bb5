"""The training engine on real images: loss falls, resume is exact, divergence stops cleanly, checkpoints are safe."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

import caekit
from caekit.checkpoint import read_checkpoint, save_checkpoint
from caekit.errors import CheckpointError, TrainingDiverged
from caekit.runs import RunFolder
from caekit.training.objectives import Reconstruct, register_objective

SMALL = {
    "model": {"name": "cae28", "args": {"upsample": "nearest"}},
    "data": {"name": "digits", "image_size": 16, "limit": 400},
    "train": {"epochs": 3, "batch_size": 32, "progress": False},
}


def _config(tmp_path: Path, name: str, **train: object) -> dict:
    return {**SMALL, "name": name, "runs_dir": str(tmp_path), "train": {**SMALL["train"], **train}}


def test_reconstruction_loss_falls_on_real_digits(tmp_path: Path) -> None:
    result = caekit.train(_config(tmp_path, "falls", epochs=4))
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert result.history[-1]["val_psnr"] > result.history[0]["val_psnr"]
    assert result.test["psnr"] > 12
    run = result.run.path
    for name in (
        "config.yaml",
        "metrics.csv",
        "results.json",
        "reconstructions.png",
        "curves.png",
        "filters.png",
        "feature_maps.png",
        "checkpoints/last.safetensors",
        "checkpoints/last.json",
        "checkpoints/best.safetensors",
    ):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    rows = RunFolder(run).read_metrics()
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4] and {"train_loss", "val_loss", "val_psnr", "images_per_s"} <= set(
        rows[0]
    )


def test_resume_after_a_kill_gives_the_same_weights(tmp_path: Path) -> None:
    straight = caekit.train(_config(tmp_path, "straight", epochs=3))

    class Killed(Exception):
        pass

    def kill_after_two(epoch: int, row: dict) -> None:
        if epoch == 2:
            raise Killed  # as if the process died right after the epoch-2 checkpoint

    with pytest.raises(Killed):
        caekit.train(_config(tmp_path, "killed", epochs=3), on_epoch_end=kill_after_two)
    stopped = caekit.api.evaluate_run(tmp_path / "killed", "last", pictures=False)  # a stopped run can still be scored
    assert stopped["psnr"] > 10
    assert json.loads((tmp_path / "killed" / "results.json").read_text())["checkpoint"] == "last"
    resumed = caekit.train(resume=tmp_path / "killed")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    last_straight, _ = read_checkpoint(straight.run.checkpoint("last"))
    last_resumed, meta = read_checkpoint(resumed.run.checkpoint("last"))
    for key, value in last_straight.items():
        if key.startswith(("model.", "optim.")):
            assert torch.equal(value, last_resumed[key]), key
    assert meta["train_state"]["epoch"] == 3


def test_resume_can_extend_a_finished_run(tmp_path: Path) -> None:
    caekit.train(_config(tmp_path, "extend", epochs=2))
    more = caekit.train(resume=tmp_path / "extend", overrides={"train.epochs": 3})
    assert [int(r["epoch"]) for r in more.history] == [1, 2, 3]
    assert len(RunFolder(tmp_path / "extend").read_metrics()) == 3


@register_objective("test-nan-after-epoch-1")
class NanAfterFirstEpoch(Reconstruct):
    """Reconstruction whose loss turns NaN once the first epoch's steps are done."""

    def __init__(self, steps_per_epoch: int) -> None:
        super().__init__("mse")
        self.steps_per_epoch, self.steps = steps_per_epoch, 0

    def loss(self, model, batch):
        self.steps += 1
        loss, metrics = super().loss(model, batch)
        return (loss * float("nan") if self.steps > self.steps_per_epoch + 2 else loss), metrics


def test_divergence_stops_with_a_message_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    config = _config(tmp_path, "nan", epochs=3)
    config["objective"] = {"name": "test-nan-after-epoch-1", "args": {"steps_per_epoch": 12}}  # 360 images / 32
    with pytest.raises(TrainingDiverged, match="the loss became nan in epoch 2"):
        caekit.train(config)
    tensors, meta = read_checkpoint(tmp_path / "nan" / "checkpoints" / "last.safetensors")
    assert meta["train_state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model."))


def test_load_reconstruct_and_encode_from_a_run(tmp_path: Path) -> None:
    result = caekit.train(_config(tmp_path, "use", epochs=1))
    model, meta = caekit.load(result.run.path)
    assert meta["image_shape"] == [1, 16, 16] and meta["model"]["name"] == "cae28"
    images = result.splits.test.images[:5]
    codes = caekit.encode(model, images)
    assert codes.shape == (5, 16 * 2 * 2)
    out = caekit.reconstruct(model, images)
    assert out.shape == (5, 1, 16, 16) and out.min() >= 0 and out.max() <= 1
    reference = result.model.cpu().eval()(images.float().div(255))
    assert torch.allclose(out, reference, atol=1e-5)
    model.train()(images.float().div(255)).mean().backward()  # still trainable after inference


def test_checkpoints_never_unpickle(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"weights": Exploit()}))
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        caekit.load(evil)
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_writes_are_atomic_and_carry_metadata(tmp_path: Path) -> None:
    model = caekit.create_model("cae28")
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 1, 28, 28)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "ckpt", model, {"epoch": 1}, {"model": optimizer})
    first = path.read_bytes()
    original = torch.Tensor.contiguous

    def fail_midway(self, *args, **kwargs):
        raise OSError("disk full")

    torch.Tensor.contiguous = fail_midway  # type: ignore[method-assign]
    try:
        with pytest.raises(OSError):
            save_checkpoint(tmp_path / "ckpt", model, {"epoch": 2}, {"model": optimizer})
    finally:
        torch.Tensor.contiguous = original  # type: ignore[method-assign]
    assert path.read_bytes() == first  # the old checkpoint is intact
    assert not list(tmp_path.glob(".*.tmp"))
    tensors, meta = read_checkpoint(path)
    assert meta["epoch"] == 1 and json.loads((tmp_path / "ckpt.json").read_text())["epoch"] == 1
    assert any(k.startswith("optim.model.") for k in tensors)


def test_a_checkpoint_for_other_settings_is_a_user_error(tmp_path: Path) -> None:
    from caekit.checkpoint import FORMAT as CHECKPOINT_FORMAT

    narrow = caekit.create_model("cae", input_shape=(1, 28, 28), upsample="nearest")
    meta = {
        "format": CHECKPOINT_FORMAT,
        "image_shape": [1, 28, 28],
        "model": {"name": "cae", "args": {"input_shape": [3, 28, 28], "upsample": "nearest"}},
    }
    path = save_checkpoint(tmp_path / "other", narrow, meta)
    with pytest.raises(
        CheckpointError, match=r"does not fit .*other shapes \['encoder.stages.0.0.weight \(64, 1, 5, 5\) here \(64, 3, 5, 5\)"
    ):
        caekit.load(path)


def test_sgd_step_schedule_and_early_stopping(tmp_path: Path) -> None:
    # so small a learning rate leaves the weights bit-identical: the validation loss cannot improve
    config = _config(tmp_path, "sgd", epochs=6, scheduler="step", step_size=1, gamma=0.5, patience=1, grad_clip=1.0)
    config["optim"] = {"name": "sgd", "lr": 1e-12, "weight_decay": 0}
    result = caekit.train(config)
    assert [row["lr"] for row in result.history] == [1e-12, 5e-13]
    assert len(result.history) == 2  # stopped after one epoch without improvement


def test_missing_run_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a caekit run folder"):
        caekit.train(resume=tmp_path)
