"""Hostile and careless inputs: each is one line and exit status 2 (or works), nothing runs that a file names, nothing
the user had is lost or silently changed."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import caekit
from caekit.checkpoint import META_KEY, read_checkpoint
from caekit.data.datasets import read_cifar_batches, read_image
from caekit.errors import CheckpointError, ConfigError, DataError
from caekit.runs import RunFolder
from conftest import run_cli

TINY = {
    "model": {"name": "cae28"},
    "data": {"name": "digits"},
    "train": {"epochs": 1, "batch_size": 64, "progress": False, "verbose": False},
}


def one_line_error(code: int, err: str, words: str) -> bool:
    lines = err.strip().splitlines()
    return (
        code == 2 and len(lines) == 1 and lines[0].startswith("caekit: error:") and words in lines[0] and "Traceback" not in err
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return caekit.train({**TINY, "name": "r", "runs_dir": str(tmp_path_factory.mktemp("runs"))}).run.path


# ------------------------------------------------------------------------------------------- configs and --set


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("train.epochs=[1", "--set train.epochs"),
        ("train.epochs=!!python/object/apply:os.system ['echo hi']", "--set train.epochs"),
        ("optim.betas=[2,5]", "betas lie in [0, 1)"),
        ("train.device=tpu", "device is auto, cpu"),
        ("train.seed=99999999999999999999999", "train.seed"),
        ("data.limit=1", "data.limit"),
        ("data.image_size=100000", "data.image_size"),
        ("train.epochs=true", "yes/no value"),
        ("data.image_size=4096", "would need"),
        ("train.epochs=10000000", "train.epochs"),
        ("optim.lr=3.4e37", "optim.lr"),  # found by the fuzz test through the CLI: it overflowed inside torch's optimiser
    ],
)
def test_bad_set_values_are_one_line(value: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["train", "--runs-dir", str(tmp_path), "--set", value], capsys)
    assert one_line_error(code, err, words), err
    assert not any(tmp_path.iterdir())  # refused before a run folder was made


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("train: {epochs: 1}\ntrain: {epochs: 2}\n", "given twice"),
        ("train: {epochs: true}\n", "yes/no value"),
        (
            "model:\n  name: cae28\n  args:\n    a: &a [x, x, x, x, x, x, x, x, x, x]\n    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            "    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
            "    g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
            "alias",
        ),
    ],
)
def test_bad_config_files_are_one_line(text: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    code, _, err = run_cli(["train", str(config), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert one_line_error(code, err, words), err


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_bytes("train: {epochs: 1}  # \u00e9poques\n".encode("latin-1"))
    code, _, err = run_cli(["train", str(config)], capsys)
    assert one_line_error(code, err, "UTF-8"), err


def test_a_spec_too_large_for_the_machine_is_refused_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "huge.yaml"
    spec.write_text(
        "input_shape: [1, 28, 28]\nencoder:\n  - {type: conv, filters: 1000000, kernel: 3, padding: 1}\n"
        "  - {type: pool}\nbottleneck: {code_size: 2000000000}\n"
    )
    code, _, err = run_cli(["train", "--model", "cae", "--spec", str(spec), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert one_line_error(code, err, "would need"), err


def test_an_unwritable_runs_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(["train", "--runs-dir", str(blocker / "runs"), "--epochs", "1"], capsys)
    assert one_line_error(code, err, str(blocker)), err


def test_an_unexpected_failure_is_one_line_with_the_traceback_in_a_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import caekit.api

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("an internal slip")

    monkeypatch.setattr(caekit.api, "train", broken)
    code, _, err = run_cli(["train"], capsys)
    line = err.strip()
    assert code == 1 and "\n" not in line and line.startswith("caekit: internal error: RuntimeError: an internal slip")
    log = Path(line.split("the traceback is in ")[1].split(" (please")[0])
    assert "Traceback" in log.read_text() and "an internal slip" in log.read_text()


# ------------------------------------------------------------------------------------------- checkpoints


def _checkpoint(path: Path, header: str | None, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    save_file(tensors or {"model.w": torch.zeros(1)}, str(path), metadata={META_KEY: header} if header is not None else None)
    return path


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a mapping"),
        (None, "no caekit metadata"),
        (
            json.dumps({"format": "caekit-checkpoint-1", "model": {"name": "cae28", "args": 5}, "image_shape": [1, 8, 8]}),
            "model.args",
        ),
        (json.dumps({"format": "caekit-checkpoint-1", "model": {"name": "cae28", "args": {}}}), "image_shape"),
        (
            json.dumps(
                {
                    "format": "caekit-checkpoint-1",
                    "image_shape": [1, 28, 28],
                    "model": {
                        "name": "cae",
                        "args": {
                            "spec": {
                                "input_shape": [1, 28, 28],
                                "encoder": [{"type": "conv", "filters": 8}],
                                "bottleneck": {"code_size": 2000000000},
                            }
                        },
                    },
                }
            ),
            "would need",
        ),
    ],
)
def test_a_damaged_or_hostile_checkpoint_is_one_line(
    header: str | None, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _checkpoint(tmp_path / "bad.safetensors", header)
    image = tmp_path / "d.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    code, _, err = run_cli(["reconstruct", str(image), "--run", str(path), "--out", str(tmp_path / "o")], capsys)
    assert one_line_error(code, err, words), err


def test_a_resume_with_a_damaged_train_state_is_one_line(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.yaml").write_text((run / "config.yaml").read_text())
    tensors, meta = read_checkpoint(run / "checkpoints" / "last.safetensors")
    meta["train_state"] = {"epoch": "three", "history": []}
    (copy / "checkpoints").mkdir()
    save_file(tensors, str(copy / "checkpoints" / "last.safetensors"), metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(CheckpointError, match="train_state"):
        caekit.train(resume=copy)


def test_a_checkpoint_trained_from_a_spec_file_holds_the_spec_itself(tmp_path: Path) -> None:
    spec = tmp_path / "mine.yaml"
    spec.write_text("input_shape: [1, 8, 8]\nencoder:\n  - {type: conv, filters: 8, kernel: 3, padding: 1}\n  - {type: pool}\n")
    result = caekit.train(
        {**TINY, "name": "spec", "runs_dir": str(tmp_path), "model": {"name": "cae", "args": {"spec": str(spec)}}}
    )
    images = result.splits.test.images[:4]
    before = caekit.reconstruct(caekit.load(result.run.path)[0], images)
    spec.write_text("input_shape: [1, 8, 8]\nencoder:\n  - {type: conv, filters: 4, kernel: 5, padding: 2}\n  - {type: pool}\n")
    model, meta = caekit.load(result.run.path)
    assert isinstance(meta["model"]["args"]["spec"], dict)
    assert torch.equal(caekit.reconstruct(model, images), before)  # the edited file changes nothing
    spec.unlink()
    assert torch.equal(caekit.reconstruct(caekit.load(result.run.path)[0], images), before)  # nor does a deleted one


# ------------------------------------------------------------------------------------------- images


def test_16_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = (np.arange(256 * 256).reshape(256, 256) % 65536).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    image, why = read_image(tmp_path / "ramp16.png")
    assert image is not None, why
    pixels = np.asarray(image.convert("L")).astype(np.float64)
    assert abs(pixels.mean() - ramp.mean() / 257) < 0.5 and (pixels == 255).mean() < 0.01  # saturated: mean 254, 99.6 % white


def test_a_png_damaged_inside_its_pixels_is_skipped_not_read_as_other_rows(tmp_path: Path) -> None:
    """Found by the fuzz test's pixel check: PIL decodes a damaged image stream without its checksum, so one byte
    spliced in near the end came back as an image whose last row was wrong."""
    pixels = (np.arange(64, dtype=np.uint8) * 4).reshape(8, 8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    good = buffer.getvalue()
    (tmp_path / "spliced.png").write_bytes(good[:58] + b"\x00")  # inside the compressed pixel data
    image, why = read_image(tmp_path / "spliced.png")
    assert image is None and why.startswith("damaged:"), why
    (tmp_path / "whole.png").write_bytes(good + b"junk after the end")  # the image itself is intact
    image, why = read_image(tmp_path / "whole.png")
    assert image is not None and np.array_equal(np.asarray(image)[..., 0], pixels), why


def test_an_image_too_large_to_decode_is_refused_from_its_header(tmp_path: Path) -> None:
    Image.new("L", (10_000, 10_000)).save(tmp_path / "huge.png")
    image, why = read_image(tmp_path / "huge.png")
    assert image is None and why.startswith("too large: 10000x10000 pixels")


def test_a_large_jpeg_is_decoded_reduced_and_still_right(tmp_path: Path) -> None:
    from sklearn.datasets import load_sample_image

    from caekit.data.datasets import fit_square

    photo = tmp_path / "china.jpg"
    Image.fromarray(load_sample_image("china.jpg")).save(photo, quality=95)  # a real 640x427 photograph
    reduced, why = read_image(photo, reduce_to=64)
    assert reduced is not None, why
    assert reduced.size == (160, 107)  # 1/4: at 1/8 the short side (54) would fall below 64
    full, _ = read_image(photo)
    assert full is not None and full.size == (640, 427)
    small = np.asarray(fit_square(reduced, "crop", 64), dtype=np.float64)
    reference = np.asarray(fit_square(full, "crop", 64), dtype=np.float64)
    assert 10 * np.log10(255**2 / np.mean((small - reference) ** 2)) > 30  # dB: the same picture


# ------------------------------------------------------------------------------------------- run folders


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", ""])
def test_a_run_name_is_one_folder_name(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one folder name"):
        RunFolder.create(tmp_path / "runs", name, "x")
    assert not (tmp_path / "escaped").exists()


def test_runs_of_one_name_started_at_once_each_get_their_own_folder(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: RunFolder.create(tmp_path, "same", "x").path, range(40)))
    assert len(set(folders)) == 40 and all(f.is_dir() for f in folders)


def test_run_files_get_the_umasks_mode(run: Path) -> None:
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.yaml", "metrics.csv", "results.json", "checkpoints/last.safetensors", "checkpoints/last.json"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~mask, name


def test_resume_cleans_stale_temporaries_and_starts_a_run_without_checkpoint(tmp_path: Path) -> None:
    def stop(epoch: int, row: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        caekit.train({**TINY, "name": "early", "runs_dir": str(tmp_path)}, on_epoch_end=stop)
    folder = tmp_path / "early"
    (folder / "checkpoints" / "last.safetensors").unlink()  # as if killed before the first checkpoint was written
    (folder / "checkpoints" / "best.safetensors").unlink()
    stale = folder / "checkpoints" / ".last.safetensors.abc123.tmp"
    stale.write_bytes(b"")
    resumed = caekit.train(resume=folder)
    assert not stale.exists() and [int(r["epoch"]) for r in resumed.history] == [1]


def test_metrics_never_run_ahead_of_the_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from caekit.training import engine

    real = engine.save_checkpoint
    calls = []

    def failing(path, *args, **kwargs):  # the second epoch's checkpoint write dies (a kill, a full disk)
        calls.append(path)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(engine, "save_checkpoint", failing)
    with pytest.raises(OSError):
        caekit.train({**TINY, "name": "full", "runs_dir": str(tmp_path), "train": {**TINY["train"], "epochs": 2}})
    rows = RunFolder(tmp_path / "full").read_metrics()
    _, meta = read_checkpoint(tmp_path / "full" / "checkpoints" / "last.safetensors")
    assert [int(r["epoch"]) for r in rows] == [1] and meta["train_state"]["epoch"] == 1


def test_report_links_cannot_run_script(run: Path, tmp_path: Path) -> None:
    from caekit.report import write_reports

    hostile = tmp_path / "javascript:alert(1)"
    for item in run.iterdir():
        if item.is_file():
            (hostile / item.name).parent.mkdir(parents=True, exist_ok=True)
            (hostile / item.name).write_bytes(item.read_bytes())
    (hostile / "checkpoints").mkdir()
    index, *_ = write_reports([hostile, run], tmp_path / "report")
    html = index.read_text()
    assert 'href="javascript:' not in html and 'href="./javascript%3Aalert%281%29.html"' in html


def test_a_damaged_sidecar_or_results_file_does_not_stop_a_report(run: Path, tmp_path: Path) -> None:
    from caekit.report import write_reports

    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.yaml", "metrics.csv"):
        (copy / name).write_text((run / name).read_text())
    (copy / "results.json").write_text("{broken")
    (copy / "checkpoints").mkdir()
    (copy / "checkpoints" / "best.json").write_text("[not, a, mapping")
    index, page = write_reports([copy], tmp_path / "r")
    assert page.is_file() and "copy" in index.read_text()


# ------------------------------------------------------------------------------------------- nothing from elsewhere runs


def _cifar_batches(folder: Path) -> Path:
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with (batches / name).open("wb") as f:
            pickle.dump(
                {
                    "batch_label": name,
                    "labels": [int(v) for v in rng.integers(0, 10, 3)],
                    "data": rng.integers(0, 256, (3, 3072)).astype(np.uint8),
                    "filenames": ["x.png"] * 3,
                },
                f,
                protocol=2,
            )
    with (batches / "batches.meta").open("wb") as f:
        pickle.dump(
            {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]},
            f,
            protocol=2,
        )
    return batches


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_cifar_batches_are_read_without_running_what_they_name(tmp_path: Path) -> None:
    batches = _cifar_batches(tmp_path)
    train = read_cifar_batches(batches, "train")
    assert train.images.shape == (15, 3, 32, 32) and train.classes[0] == "airplane"
    marker = tmp_path / "ran"
    with (batches / "test_batch").open("wb") as f:
        pickle.dump({"data": _RunsCode(marker), "labels": []}, f, protocol=2)
    with pytest.raises(DataError, match=r"refused to load (posix|nt)\.system"):
        caekit.train({**TINY, "data": {"name": "cifar10", "root": str(tmp_path)}, "runs_dir": str(tmp_path / "runs")})
    assert not marker.exists()


def test_a_damaged_or_unwritable_cache_costs_a_decode_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from caekit.data.datasets import load_dataset

    monkeypatch.setenv("CAEKIT_CACHE", str(tmp_path / "cache"))  # its own cache: the others' entries stay whole
    root = tmp_path / "imgs"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 6), 40 * i + (label == "b") * 100, np.uint8)).save(root / label / f"{i}.png")
    first = load_dataset("folder", root=root)
    (stored,) = (Path(os.environ["CAEKIT_CACHE"]) / "stores").glob("*/images.npy")
    pixels = bytearray(stored.read_bytes())
    pixels[-1] ^= 0xFF  # the same size, one pixel changed: only the digest can tell
    stamp = stored.stat()
    stored.write_bytes(bytes(pixels))
    os.utime(stored, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))  # a coarse clock could keep the old date
    with pytest.warns(UserWarning, match=r"is damaged \(.*does not match its sha256\); decoding the images again"):
        again = load_dataset("folder", root=root)
    assert torch.equal(first.images, again.images)
    stored.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"is damaged \(.*images.npy holds 7 bytes.*\); decoding the images again"):
        again = load_dataset("folder", root=root)
    assert torch.equal(first.images, again.images)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CAEKIT_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not cache"):
        uncached = load_dataset("folder", root=root)
    assert torch.equal(first.images, uncached.images)


def test_broken_links_and_other_files_are_counted_not_silently_ignored(tmp_path: Path) -> None:
    from caekit.data.datasets import load_dataset

    root = tmp_path / "imgs"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 6), 40 * i, np.uint8)).save(root / label / f"{i}.png")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "b" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.warns(UserWarning, match=r"ignored 1 broken links, 1 files with another extension"):
        data = load_dataset("folder", root=root)
    assert len(data) == 6


def test_folders_are_fitted_image_by_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most one full-size image per decoding thread is alive at a time (100 photos of 2000x2000 took 2.2 GB)."""
    from caekit.data import datasets

    root = tmp_path / "imgs"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(np.full((300, 200), 10 * i, np.uint8)).save(root / label / f"{i}.png")
    alive, peak = [0], [0]
    real_read, real_fit = datasets.read_image, datasets.fit_square

    def counting_read(path, reduce_to=None):
        alive[0] += 1
        peak[0] = max(peak[0], alive[0])
        return real_read(path, reduce_to)

    def counting_fit(img, fit, size):
        out = real_fit(img, fit, size)
        alive[0] -= 1
        return out

    monkeypatch.setattr(datasets, "read_image", counting_read)
    monkeypatch.setattr(datasets, "fit_square", counting_fit)
    data = datasets.load_dataset("folder", root=root, image_size=16)
    assert len(data) == 40 and data.shape == (1, 16, 16)
    assert peak[0] <= max(2, os.cpu_count() or 2)  # the thread pool's size, not the 40 images


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MB tmpfs (root on Linux), unmounted afterwards; the test skips, saying why, where none can be mounted."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_keeps_what_was_written(small_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        *["train", "--model", "cae28", "--dataset", "digits", "--epochs", "30", "--name", "full", "--no-progress"],
        "--runs-dir",
        str(small_disk),
    ]
    code, _, err = run_cli(args, capsys)
    assert one_line_error(code, err, "No space left on device"), err
    run = small_disk / "full"
    assert (run / "config.yaml").is_file() and not list(run.rglob("*.tmp"))  # no half-written file stays behind
    last = run / "checkpoints" / "last.safetensors"
    if last.is_file():  # the last complete checkpoint still loads, and metrics.csv is not ahead of it
        _, meta = read_checkpoint(last)
        assert len(RunFolder(run).read_metrics()) <= meta["train_state"]["epoch"]


def test_a_run_killed_at_random_moments_resumes_to_a_readable_checkpoint(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    options = "train --model cae28 --dataset digits --epochs 6 --name killed --no-progress --set train.batch_size=16"
    command = [sys.executable, "-m", "caekit", *options.split(), "--runs-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last = tmp_path / "killed" / "checkpoints" / "last.safetensors"
    for delay in (0.3, 0.9, 1.7):
        process = subprocess.Popen(
            command if not last.is_file() else [*command, "--resume", str(tmp_path / "killed")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while not last.is_file() and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if last.is_file():
            read_checkpoint(last)  # whole after every kill: the write is atomic
    done = subprocess.run([*command, "--resume", str(tmp_path / "killed")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _, meta = read_checkpoint(last)
    assert meta["train_state"]["epoch"] == 6 and not list((tmp_path / "killed").rglob("*.tmp"))
