"""Shared fixtures: where the real data lives, and a private cache so tests never touch the user's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CAEKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MNIST_ROOT = Path(os.environ.get("CAEKIT_MNIST_ROOT", ROOT / "data"))


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread, restoring the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def cifar_sample() -> Path:
    """CIFAR-10 sample: train/ and test/ class folders of 32x32 PNGs (200 + 100 a class)."""
    return _need(SHARED_DATA / "cifar10-sample", "the CIFAR-10 sample")


@pytest.fixture(scope="session")
def plankton_sample() -> Path:
    """Plankton sample: 121 class folders of grey JPEGs of varied sizes (6 to 165 a class)."""
    return _need(SHARED_DATA / "plankton-sample", "the plankton sample")


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """A folder holding MNIST/raw (made by `make test` from shared/data/get_mnist.py)."""
    return _need(MNIST_ROOT / "MNIST" / "raw" / "train-images-idx3-ubyte", "MNIST").parents[2]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The command line as a user runs it: (exit status, stdout, stderr)."""
    from caekit.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
