"""The command line as a user meets it: one-line errors with a non-zero exit, and the commands' files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["summary", "no-such-preset"], "'no-such-preset' is neither a preset"),
        (["train", "--model", "cae99"], "unknown model 'cae99'"),
        (["train", "--dataset", "mnist", "--data-root", "/nonexistent"], "MNIST not found under '/nonexistent'"),
        (["train", "--set", "train.epochs=-1"], "train.epochs"),
        (["train", "--set", "nonsense"], "not of the form"),
        (["train", "--dataset", "folder"], "needs --data-root"),
        (["summary", "cae32", "--input-shape", "3,4,4"], "pool3"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert err.startswith("caekit: error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_config_file_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model: {name: cae28}\ntrain: {epochs: 2, batchsize: 8}\n")
    code, _, err = run_cli(["train", str(config)], capsys)
    assert code == 2 and "train.batchsize" in err


def test_summary_prints_the_layer_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["summary", "cae28"], capsys)
    assert code == 0
    assert "unpool3  max" in out and "1x28x28" in out and "code size: 144" in out


def test_train_reconstruct_and_encode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        [
            "train",
            "--model",
            "cae28",
            "--dataset",
            "digits",
            "--image-size",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--runs-dir",
            str(tmp_path),
            "--name",
            "cli",
            "--no-progress",
            "--upsample",
            "bilinear",
        ],
        capsys,
    )
    assert code == 0 and "run folder:" in out and "psnr" in out
    run = tmp_path / "cli"
    images = []
    for i, value in enumerate((30, 200)):
        path = tmp_path / f"digit{i}.png"
        array = np.full((20, 12), value, dtype=np.uint8)
        array[5:15, 4:8] = 255 - value
        Image.fromarray(array).save(path)
        images.append(str(path))
    code, out, _ = run_cli(["reconstruct", *images, "--model", str(run), "--out", str(tmp_path / "rec")], capsys)
    assert code == 0
    assert Image.open(tmp_path / "rec" / "digit0.png").size == (16, 16)
    assert (tmp_path / "rec" / "comparison.png").stat().st_size > 1000
    code, out, _ = run_cli(["features", images[0], "--model", str(run), "--out", str(tmp_path / "fm.png")], capsys)
    assert code == 0 and Image.open(tmp_path / "fm.png").size[0] > 200
    code, out, _ = run_cli(["encode", "--model", str(run), "--out", str(tmp_path / "codes.npz")], capsys)
    assert code == 0
    codes = np.load(tmp_path / "codes.npz")
    assert codes["codes"].shape == (360, 64) and codes["labels"].shape == (360,)
    code, out, _ = run_cli(
        [
            "classify",
            "--model",
            str(run),
            "--mode",
            "finetune",
            "--per-class",
            "10",
            "--epochs",
            "1",
            "--l2-sp",
            "0.01",
            "--runs-dir",
            str(tmp_path / "clf"),
        ],
        capsys,
    )
    assert code == 0 and "macro" in out
    config = (next((tmp_path / "clf").rglob("config.yaml"))).read_text()
    assert "l2_sp: 0.01" in config and "mode: finetune" in config


def test_module_entry_point_exits_non_zero_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "caekit", "train", "--model", "nope"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and "unknown model 'nope'" in result.stderr


RUN_CONFIGS = sorted(
    p for p in (Path(__file__).parent.parent / "configs").glob("*.yaml") if not p.name.startswith(("compare-", "search-"))
)


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=[p.stem for p in RUN_CONFIGS])
def test_shipped_run_configs_validate_and_name_options_their_model_takes(path):
    import inspect

    from caekit.config import resolve_config
    from caekit.models.registry import MODELS

    config = resolve_config(path)
    inspect.signature(MODELS.get(config.model.name)).bind_partial(**config.model.args)  # TypeError on an unknown option


COMPARE_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("compare-*.yaml"))


@pytest.mark.parametrize("path", COMPARE_CONFIGS, ids=[p.stem for p in COMPARE_CONFIGS])
def test_shipped_compare_configs_validate(path):
    from caekit.workflows.compare import load_compare_config

    config = load_compare_config(path)
    assert config.models and all(entry.augment in (None, "auto", "none", "digits", "natural") for entry in config.models)
