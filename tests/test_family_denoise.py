"""Denoising: the objective trains through the engine, the comparison table, and the CLI commands of the family."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from caekit.api import train
from caekit.cli import main
from caekit.data.datasets import load_dataset
from caekit.data.noise import Corruption
from caekit.errors import CaekitError
from caekit.evaluate.denoising import apply_filter, compare
from caekit.metrics import psnr
from caekit.training.denoise import Denoise

SPEC = {
    "name": "tiny",
    "input_shape": [1, 8, 8],
    "encoder": [{"type": "conv", "filters": 8, "kernel": 3, "padding": 1, "batch_norm": True}, {"type": "pool"}],
    "upsample": "nearest",
}


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    return train(
        {
            "runs_dir": str(folder),
            "name": "dae",
            "model": {"name": "cae", "args": {"spec": SPEC}},
            "data": {"name": "digits", "limit": 600},
            "objective": {"name": "denoise", "args": {"level": [0.2, 0.4]}},
            "optim": {"lr": 0.01, "weight_decay": 0.0},
            "train": {"epochs": 5, "batch_size": 16, "progress": False},
        }
    )


def test_denoising_objective_learns_to_beat_the_noise(denoiser):
    history = denoiser.history
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert denoiser.test["psnr"] > denoiser.test["noisy_psnr"] + 1  # cleaner than its input
    assert (denoiser.run.path / "denoising.png").stat().st_size > 1000


def test_denoise_corrupts_training_inputs_but_validation_is_reproducible():
    objective = Denoise(level=0.3)
    batch = {"image": torch.rand(4, 1, 8, 8)}
    assert not torch.equal(objective.inputs(batch), objective.inputs(batch))
    model = torch.nn.Identity()
    a, b = objective.evaluate(model, batch), objective.evaluate(model, batch)
    assert torch.equal(a["loss"], b["loss"]) and torch.allclose(a["psnr"], a["noisy_psnr"])
    with pytest.raises(CaekitError):
        Denoise(level=[0.5, 0.1])


def test_comparison_table_scores_every_method_against_the_clean_images(denoiser):
    clean = load_dataset("digits").unit_images(0, 12)
    rows, outputs = compare(clean, Corruption("gaussian", 0.3), denoiser.model.cpu(), tune_images=4)
    methods = [row["method"] for row in rows]
    assert methods == ["noisy", "denoising CAE", "gaussian blur", "median", "non-local means", "TV (Chambolle)"]
    noisy = next(row for row in rows if row["method"] == "noisy")
    assert noisy["PSNR (dB)"] == pytest.approx(psnr(outputs["noisy"], clean).mean().item(), abs=0.01)
    assert all(row["PSNR (dB)"] > noisy["PSNR (dB)"] for row in rows if row["method"] != "noisy")
    assert apply_filter("median", clean, 1).shape == clean.shape


def test_cli_denoise_writes_cleaned_images(denoiser, tmp_path, capsys):
    paths = []
    for i, image in enumerate(load_dataset("digits").images[:3]):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(image[0].numpy()).save(path)
        paths.append(str(path))
    main(["denoise", *paths, "--model", str(denoiser.run.path), "--out", str(tmp_path / "out"), "--add-noise", "gaussian"])
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"digit0.png", "digit0_noisy.png", "comparison.png"}
    assert Image.open(out / "digit1.png").size == (8, 8)
    assert "3 denoised images" in capsys.readouterr().out


def test_cli_encoder838_and_sample_errors(denoiser, tmp_path, capsys):
    main(["encoder838", "--epochs", "2"])
    assert "patterns reconstructed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--model", str(denoiser.run.path), "--out", str(tmp_path / "s.png")])
    assert exit_info.value.code == 2
    assert "not a generative model" in capsys.readouterr().err
