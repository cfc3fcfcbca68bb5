"""A user's first hour, trap by trap: nothing of theirs is overwritten, nothing happens silently, outputs land in the
run folder, one vocabulary, errors and warnings a person can act on, no side effects on a library user's process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import caekit
from conftest import run_cli

TINY = {"model": {"name": "cae28"}, "data": {"name": "digits"}, "train": {"epochs": 1, "batch_size": 64, "progress": False}}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    return caekit.train({**TINY, "name": "tiny", "runs_dir": str(folder), "train": {**TINY["train"], "verbose": False}}).run.path


def _digit(path: Path, size: tuple[int, int] = (12, 20), value: int = 40) -> Path:
    array = np.full(size[::-1], value, dtype=np.uint8)
    array[5:15, 4:8] = 255 - value
    Image.fromarray(array).save(path)
    return path


# ------------------------------------------------------------------------------------------- nothing lost


def test_reconstruct_never_writes_over_its_inputs(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "ow"
    folder.mkdir()
    image = _digit(folder / "digit0.png")
    before = image.read_bytes()
    code, _, err = run_cli(["reconstruct", str(image), "--run", str(run), "--out", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1 and "is one of the input images" in err
    assert image.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["digit0.png"]


def test_two_inputs_with_one_stem_are_refused_before_anything_is_written(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _digit(tmp_path / "a.png"), tmp_path / "a.jpg"
    Image.open(a).save(b)
    code, _, err = run_cli(["reconstruct", str(a), str(b), "--run", str(run), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "both be written" in err and not (tmp_path / "out").exists()


def test_reconstructions_can_keep_the_inputs_size(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = _digit(tmp_path / "wide.png", size=(12, 20))
    code, _, _ = run_cli(["reconstruct", str(image), "--run", str(run), "--out", str(tmp_path / "r"), "--keep-size"], capsys)
    assert code == 0 and Image.open(tmp_path / "r" / "wide.png").size == (12, 20)
    code, _, _ = run_cli(["reconstruct", str(image), "--run", str(run), "--out", str(tmp_path / "s")], capsys)
    assert Image.open(tmp_path / "s" / "wide.png").size == (8, 8)  # the model's size unless asked


# ------------------------------------------------------------------------------------------- say what happens


def test_training_says_what_it_does_and_that_a_preset_adapted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        ["train", "--model", "cae28", "--dataset", "digits", "--epochs", "1", "--runs-dir", str(tmp_path), "--name", "said"],
        capsys,
    )
    assert code == 0
    for words in ("device cpu", "train 1293", "val 144", "test 360", "1x8x8", "parameters", "code", str(tmp_path / "said")):
        assert words in out, words
    assert "cae28 is 1x28x28; it was adapted to the data's 1x8x8" in out and "keep the preset's shape: --image-size 28," in out


def test_a_preset_that_adapted_only_its_channels_names_only_those(capsys: pytest.CaptureFixture[str]) -> None:
    from caekit.config import RunConfig
    from caekit.data import make_splits
    from caekit.runner import describe_run

    splits = make_splits("digits", image_size=32)  # 1x32x32: cae32's size, not its three channels
    line = next(
        x
        for x in describe_run(RunConfig(), torch.nn.Linear(1, 1), splits, None, torch.device("cpu")).splitlines()
        if x.startswith("note")
    )
    assert "cae32 is 3x32x32; it was adapted to the data's 1x32x32" in line
    assert "keep the preset's shape: --channels 3," in line and "--image-size" not in line


# ------------------------------------------------------------------------------------------- outputs in the run folder


def test_outputs_go_into_the_run_folder_not_the_working_directory(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    image = _digit(tmp_path / "d.png")
    for args in (
        ["encode", "--run", str(run)],
        ["features", str(image), "--run", str(run)],
        ["embed", "--run", str(run), "--method", "pca", "--no-projector"],
        ["reconstruct", str(image), "--run", str(run)],
    ):
        code, _, err = run_cli(args, capsys)
        assert code == 0, err
    assert list(work.iterdir()) == []
    assert (run / "codes-test.npz").is_file() and (run / "feature_maps-d.png").is_file()
    assert (run / "embedding" / "pca.png").is_file() and (run / "reconstructions" / "d.png").is_file()


def test_model_names_an_architecture_and_run_a_trained_run(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["encode", "--model", str(run), "--out", str(tmp_path / "c.npz")], capsys)
    assert code == 0 and (tmp_path / "c.npz").is_file()
    assert err.strip().splitlines() == [
        "caekit: warning: --model RUN is deprecated for a trained run; use --run RUN (--model names an architecture)"
    ]
    code, _, err = run_cli(
        ["encode", "--run", str(run / "checkpoints" / "best.safetensors"), "--out", str(tmp_path / "d.npz")], capsys
    )
    assert code == 0 and err == ""


def test_every_option_says_what_it_does_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    from caekit.cli import cli

    for name, command in cli.commands.items():
        for param in command.params:
            if param.param_type_name == "option" and not getattr(param, "hidden", False) and param.name != "help":
                assert param.help, f"{name} {param.opts}"
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0 and "--epochs" in out and "-e," in out and "[default: " in out


# ------------------------------------------------------------------------------------------- errors and warnings


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "cae29"], "did you mean 'cae28'"),
        (["train", "--dataset", "digit"], "did you mean 'digits'"),
        (["train", "--set", "train.epoch=3"], "did you mean 'epochs'"),
        (["train", "--set", "objective.name=reconstuct"], "did you mean 'reconstruct'"),
    ],
)
def test_a_near_miss_gets_a_did_you_mean(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_yaml_errors_give_the_file_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: cae28\n  args: {upsample: [nearest}\n")
    code, _, err = run_cli(["train", str(bad)], capsys)
    assert code == 2 and f"{bad}:3:" in err and err.count("\n") == 1


def test_a_section_given_as_a_name_says_how_to_write_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model: cae28\n")
    code, _, err = run_cli(["train", str(config)], capsys)
    assert code == 2 and "model: a mapping such as {name: ...}" in err and "instance of" not in err


def test_set_values_are_typed_by_the_schema(tmp_path: Path) -> None:
    from caekit.config import RunConfig, with_overrides

    config = with_overrides(RunConfig(), ["data.root=2024", "train.epochs=3", "name=007", "optim.lr=1e-3"])
    assert config.data.root == "2024" and config.train.epochs == 3 and config.name == "007" and config.optim.lr == 1e-3


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "some.yaml"
    spec.write_text("input_shape: [1, 28, 28]\n")
    image = _digit(tmp_path / "d.png")
    code, _, err = run_cli(["reconstruct", str(image), "--run", str(spec), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "not a safetensors checkpoint" in err and "header" not in err


def test_a_folder_given_as_an_image_is_one_line(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["reconstruct", str(tmp_path), "--run", str(run)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("caekit: error:") and "is a folder" in err


def test_skipped_images_are_one_warning_line_naming_a_list_of_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "imgs"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            _digit(root / label / f"{i}.png", value=30 + 20 * i)
    (root / "a" / "broken.png").write_bytes(b"not a png")
    (root / "b" / "broken too.png").write_bytes(b"\x89PNG\r\n")
    whole = (root / "b" / "0.png").read_bytes()
    (root / "b" / "cut short.png").write_bytes(whole[: len(whole) // 2])  # a real PNG, truncated: damaged
    code, _, err = run_cli(
        [
            "train",
            "--dataset",
            "folder",
            "--data-root",
            str(root),
            "--image-size",
            "16",
            "--epochs",
            "1",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        capsys,
    )
    assert code == 0
    warning = [line for line in err.splitlines() if "skipped" in line]
    assert len(warning) == 1
    assert warning[0].startswith("caekit: warning: skipped 3 of 15 images that could not be read (2 not an image, 1 damaged;")
    listing = Path(warning[0].rsplit(" ", 1)[-1].rstrip(")"))
    reasons = dict(line.split("\t") for line in listing.read_text().splitlines())
    assert sorted(reasons) == sorted(
        str(root / d / f) for d, f in (("a", "broken.png"), ("b", "broken too.png"), ("b", "cut short.png"))
    )
    assert reasons[str(root / "b" / "cut short.png")].startswith("damaged: ")


# ------------------------------------------------------------------------------------------- library manners


def test_training_as_a_library_leaves_the_process_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from caekit.training import cpu

    calls: list[str] = []
    monkeypatch.setattr(cpu, "retain_freed_memory", lambda: calls.append("malloc") or True)
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: calls.append(f"denormal {on}") or True)
    caekit.train({**TINY, "name": "lib", "runs_dir": str(tmp_path), "train": {**TINY["train"], "verbose": False}})
    assert calls == []
    caekit.train(
        {**TINY, "name": "tuned", "runs_dir": str(tmp_path), "train": {**TINY["train"], "verbose": False, "cpu_tuning": True}}
    )
    assert calls == ["denormal True", "malloc", "denormal False"]  # flush-denormal restored; the allocator cannot be


def test_drawing_pictures_leaves_matplotlib_as_it_was(tmp_path: Path) -> None:
    """caekit draws on matplotlib Figures directly: importing it chooses no backend and opens no pyplot, so a
    notebook's inline figures keep working (importing caekit.viz used to switch the whole process to Agg)."""
    import subprocess
    import sys

    script = (
        "import sys, torch, matplotlib\n"
        "from caekit import viz\n"
        "from caekit.viz import generative, painter, pixelwise, representations\n"
        f"viz.reconstructions(torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8), {str(tmp_path / 'r.png')!r})\n"
        "print('matplotlib.pyplot' in sys.modules, matplotlib.rcParams._get_backend_or_none())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "None"] and (tmp_path / "r.png").stat().st_size > 1000


def test_the_lists_describe_every_entry_and_fit_the_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "72")
    for command in ("models", "datasets"):
        code, out, _ = run_cli([command], capsys)
        lines = out.splitlines()
        assert code == 0 and all(len(line) <= 72 for line in lines), max(lines, key=len)
        entries = [line for line in lines if not line.startswith(" ")]
        assert all(len(entry.split(None, 1)) == 2 for entry in entries), entries  # a name and a description each
