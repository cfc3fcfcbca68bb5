"""DistributedDataParallel on CPU with gloo: two torchrun processes match one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from caekit import api
from caekit.checkpoint import model_state, read_checkpoint
from caekit.data.imageset import Batches
from caekit.models import create_model
from caekit.runs import RunFolder
from caekit.training import distributed

DATA = {"name": "digits", "image_size": 16, "limit": 160, "val_fraction": 0.2}  # 128 train, 32 val images
PER_RANK_BATCH = 16


def _config(runs_dir: Path, name: str, batch_size: int, epochs: int) -> dict:
    return {
        "name": name,
        "runs_dir": str(runs_dir),
        "model": {"name": "cae28"},
        "data": DATA,
        "train": {"epochs": epochs, "batch_size": batch_size, "device": "cpu", "progress": False, "seed": 3},
    }


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("WORLD_SIZE", None)
    command = [
        sys.executable,
        *["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "caekit", "train"],
        *args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_ranks_share_the_single_process_batches() -> None:
    """Batch i of 2 ranks x B together is batch i of one process x 2B, so DDP's mean of means is the global mean."""
    tensors = {"image": torch.arange(100).view(100, 1, 1, 1), "label": torch.arange(100)}
    single = [b["label"] for b in Batches(tensors, 20, seed=5)]
    ranks = [[b["label"] for b in Batches(tensors, 10, seed=5, rank=r, world_size=2)] for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for i, whole in enumerate(single):
        assert sorted(torch.cat([ranks[0][i], ranks[1][i]]).tolist()) == sorted(whole.tolist())


def test_evaluation_shards_count_each_image_once() -> None:
    tensors = {"image": torch.zeros(7, 1, 1, 1), "label": torch.arange(7)}
    shards = [
        torch.cat([b["label"] for b in Batches(tensors, 2, shuffle=False, rank=r, world_size=2, pad=False)]) for r in range(2)
    ]
    assert sorted(torch.cat(shards).tolist()) == list(range(7))
    padded = [len(Batches(tensors, 2, rank=r, world_size=2)) for r in range(2)]
    assert padded[0] == padded[1]  # training ranks step together, so DDP's all-reduce never waits for a missing batch


def test_single_process_never_touches_torch_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = distributed.setup("cpu")
    assert (info.rank, info.world_size, info.is_main, info.enabled) == (0, 1, True, False)
    assert not torch.distributed.is_initialized()
    assert torch.equal(distributed.sum_across(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]))


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_and_resume(tmp_path: Path) -> None:
    # One process, global batch 32, two epochs in one go.
    single = api.train(_config(tmp_path / "single", "run", 2 * PER_RANK_BATCH, 2))
    assert single.run is not None and len(single.splits.train) % (2 * PER_RANK_BATCH) == 0

    # Two ranks of 16, one epoch, then resumed for the second.
    ddp_dir = tmp_path / "ddp"
    args = [
        "--dataset",
        "digits",
        "--image-size",
        "16",
        "--model",
        "cae28",
        "--batch-size",
        str(PER_RANK_BATCH),
        "--epochs",
        "1",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--no-progress",
        "--runs-dir",
        str(ddp_dir),
        "--name",
        "run",
        "--set",
        "data.limit=160",
        "--set",
        "data.val_fraction=0.2",
    ]
    _torchrun(*args)
    assert [p.name for p in ddp_dir.iterdir()] == ["run"]  # only rank 0 made a folder
    assert len(RunFolder(ddp_dir / "run").read_metrics()) == 1
    _torchrun("--resume", str(ddp_dir / "run"), "--epochs", "2", "--no-progress")
    assert [p.name for p in ddp_dir.iterdir()] == ["run"]

    ddp_run = RunFolder(ddp_dir / "run")
    rows, reference = ddp_run.read_metrics(), single.history
    assert [int(r["epoch"]) for r in rows] == [1, 2]  # one row per epoch, none written twice
    for got, want in zip(rows, reference):
        for key in ("train_loss", "val_loss", "val_psnr"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key

    ddp_weights = model_state(read_checkpoint(ddp_run.checkpoint("last"))[0])
    single_weights = model_state(read_checkpoint(single.run.checkpoint("last"))[0])
    assert ddp_weights.keys() == single_weights.keys()
    for key, value in single_weights.items():
        torch.testing.assert_close(ddp_weights[key], value, rtol=1e-3, atol=1e-5, msg=key)
    # The losses fell, so the two runs agree on real training rather than on an untouched model.
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert ddp_run.read_json("results.json")["test"]["loss"] == pytest.approx(single.test["loss"], rel=1e-4)


RANK_SCRIPT = """
import sys
import torch
from safetensors.torch import save_file
from caekit.config import OptimConfig, TrainConfig
from caekit.data.datasets import load_dataset
from caekit.models import create_model
from caekit.training import distributed
from caekit.training.engine import Engine
from caekit.training.objectives import build_objective

kind, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
if kind == "gan":
    model, objective = create_model("dcgan", input_shape=(1, 8, 8), latent_dim=4, width=8), build_objective("gan")
else:
    model, objective = create_model("vae", input_shape=(1, 8, 8), latent_dim=2, channels=[4]), build_objective("elbo")
engine = Engine(model, objective, TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu"), OptimConfig())
rank = engine.dist.rank
torch.manual_seed(100 + rank)  # each rank draws its own noise, as in a real run
engine.train_epoch(engine.batches(load_dataset("digits").subset(list(range(256))), shuffle=True), 0)
save_file({k: v.detach().contiguous() for k, v in model.named_parameters()}, f"{out}/rank{rank}.safetensors")  # BN statistics stay per rank
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_objectives_that_call_model_parts_keep_ranks_in_step(tmp_path: Path, kind: str) -> None:
    """A GAN's and a VAE's steps call submodules; their gradients must still be all-reduced, or ranks drift apart."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [
        sys.executable,
        *["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
        str(script),
        kind,
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in range(2)]
    torch.manual_seed(0)
    initial = (
        create_model("dcgan", input_shape=(1, 8, 8), latent_dim=4, width=8)
        if kind == "gan"
        else create_model("vae", input_shape=(1, 8, 8), latent_dim=2, channels=[4])
    )
    moved = 0
    for key, value in ranks[0].items():
        torch.testing.assert_close(ranks[1][key], value, rtol=1e-5, atol=1e-6, msg=key)
        moved += not torch.equal(value, dict(initial.named_parameters())[key])
    assert moved > len(ranks[0]) // 2  # they agree on trained weights, not on an untouched model


def _devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found


@pytest.mark.parametrize("device", _devices())
def test_checkpoints_load_on_cpu_whatever_device_trained_them(tmp_path: Path, device: str) -> None:
    config = _config(tmp_path, "run", 32, 1)
    config["data"] = {**DATA, "limit": 64}
    config["train"]["device"] = device
    result = api.train(config)
    assert next(result.model.parameters()).device.type == device
    model, _meta = api.load(result.run.path, device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    images = result.splits.test.unit_images(0, 4)
    with torch.no_grad():
        expected = result.model(images.to(device)).float().cpu()
    torch.testing.assert_close(
        model(images), expected, rtol=1e-2 if device != "cpu" else 1e-5, atol=1e-3 if device != "cpu" else 1e-6
    )
