"""The tutorial notebooks: committed clean (valid nbformat 4, no outputs), titled, listed by their runner, and
skipped with one line when their data is absent. Nothing here starts a kernel: `make notebooks` executes them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_notebooks.py"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = [
    "01-cae-unpooling.ipynb",
    "02-stacked-and-denoising.ipynb",
    "03-vae-and-dcgan.ipynb",
    "04-pretrain-then-label-a-little.ipynb",
    "05-segnet-vs-unet.ipynb",
]


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env)


def test_the_five_tutorials_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_valid_clean_and_starts_with_a_title(path: Path) -> None:
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "a tutorial runs something"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"outputs committed in: {cell.source[:60]!r}"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "the first cell is a markdown title"


def test_list_names_every_notebook_and_what_it_needs() -> None:
    done = run_script("--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == EXPECTED
    assert all("needs: " in line for line in lines)


def test_missing_data_skips_the_notebook_without_starting_a_kernel(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # importing nbclient or jupyter_client (the way to a kernel) would fail loudly
    fakes = tmp_path / "fakes"
    for name in ("nbclient", "jupyter_client"):
        (fakes / name).mkdir(parents=True)
        (fakes / name / "__init__.py").write_text("raise RuntimeError('a kernel was about to start')\n")
    env = {**os.environ, "CAEKIT_SHARED_DATA": str(empty), "CAEKIT_MNIST_ROOT": str(empty), "PYTHONPATH": str(fakes)}
    done = run_script("--only", "03-vae-and-dcgan.ipynb", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    missing = empty.resolve() / "MNIST" / "raw" / "train-images-idx3-ubyte"
    assert done.stdout.splitlines() == [f"skipped 03-vae-and-dcgan.ipynb: no MNIST at {missing}"]
