"""Plug-ins: a user's module or installed package registers a model (or dataset, objective) that the CLI then trains."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from caekit import plugins
from caekit.errors import ConfigError
from caekit.plugins import load_plugins
from conftest import run_cli

TINY_MODEL = '''
from torch import nn

from caekit.models.registry import register_model


class Tiny(nn.Module):
    def __init__(self, input_shape):
        super().__init__()
        channels = input_shape[0]
        self.net = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, channels, 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.net(x)


@register_model("{name}")
def build(input_shape=(1, 8, 8)):
    """A two-layer plug-in autoencoder."""
    return Tiny(input_shape)
'''


TINY_DATASET = '''
import torch

from caekit.data import ImageSet, LoadRequest, register_dataset


@register_dataset("plugin_stripes")
def stripes(request: LoadRequest):
    """Horizontal and vertical stripes, 32 of each (no test split)."""
    if request.split != "train":
        return None
    size = request.image_size or 8
    images = torch.zeros(64, 1, size, size, dtype=torch.uint8)
    images[:32, :, ::2] = 255
    images[32:, :, :, ::2] = 255
    return ImageSet(images, torch.arange(64) // 32, ["across", "down"], "stripes")
'''


@pytest.fixture
def package_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for the plug-in modules; the registrations and the loaded-list are undone afterwards."""
    from caekit.models.registry import MODELS

    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    from caekit.data import DATASETS

    models_before, datasets_before, loaded_before = dict(MODELS._items), dict(DATASETS._items), dict(plugins._loaded)
    yield folder
    MODELS._items.clear()
    MODELS._items.update(models_before)
    DATASETS._items.clear()
    DATASETS._items.update(datasets_before)
    plugins._loaded.clear()
    plugins._loaded.update(loaded_before)
    for name in [m for m in sys.modules if m.startswith("caekit_test_plugin")]:
        del sys.modules[name]


def test_a_plugin_module_trains_from_the_command_line(
    package_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (package_dir / "caekit_test_plugin_a.py").write_text(TINY_MODEL.replace("{name}", "plugin_tiny_a"))
    code, out, err = run_cli(["--plugin", "caekit_test_plugin_a", "models"], capsys)
    assert code == 0, err
    assert any(
        line.startswith("plugin_tiny_a") and line.endswith("A two-layer plug-in autoencoder. (plug-in)")
        for line in out.splitlines()
    )
    runs = tmp_path / "runs"
    args = ["--plugin", "caekit_test_plugin_a", "train", "-m", "plugin_tiny_a", "--image-size", "8", "--epochs", "2"]
    code, _, err = run_cli([*args, "--runs-dir", str(runs), "--name", "tiny", "--no-progress"], capsys)
    assert code == 0, err
    assert (runs / "tiny" / "checkpoints" / "best.safetensors").is_file()
    assert len((runs / "tiny" / "metrics.csv").read_text().splitlines()) == 3  # header and two epochs


def test_a_plugin_dataset_is_asked_with_a_load_request(
    package_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (package_dir / "caekit_test_plugin_d.py").write_text(TINY_DATASET)
    code, out, err = run_cli(["--plugin", "caekit_test_plugin_d", "datasets"], capsys)
    assert code == 0, err
    assert "plugin_stripes" in out and "Horizontal and vertical stripes" in out
    runs = tmp_path / "runs"
    args = ["--plugin", "caekit_test_plugin_d", "train", "-m", "cae32", "-d", "plugin_stripes", "--image-size", "16"]
    code, out, err = run_cli([*args, "--epochs", "1", "--runs-dir", str(runs), "--name", "s", "--no-progress"], capsys)
    assert code == 0, err
    assert "1x16x16" in out  # trained at the requested image size
    assert (runs / "s" / "checkpoints" / "best.safetensors").is_file()


def test_an_installed_entry_point_is_loaded(package_dir: Path) -> None:
    (package_dir / "caekit_test_plugin_b.py").write_text(TINY_MODEL.replace("{name}", "plugin_tiny_b"))
    info = package_dir / "caekit_test_plugin_b-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: caekit-test-plugin-b\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[caekit.plugins]\ntiny = caekit_test_plugin_b\n")
    from caekit.models import create_model

    assert "caekit_test_plugin_b" in load_plugins()
    assert type(create_model("plugin_tiny_b", input_shape=(3, 8, 8))).__name__ == "Tiny"
    assert load_plugins().count("caekit_test_plugin_b") == 1  # each plug-in once


def test_a_broken_plugin_is_one_line(package_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (package_dir / "caekit_test_plugin_c.py").write_text("raise RuntimeError('no GPU\\nhere')\n")
    with pytest.raises(
        ConfigError, match=r"plug-in module 'caekit_test_plugin_c' could not be loaded: RuntimeError: no GPU here"
    ):
        load_plugins(["caekit_test_plugin_c"])
    code, _, err = run_cli(["--plugin", "caekit_test_plugin_missing", "models"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("caekit: error: plug-in module 'caekit_test_plugin_missing' could not be loaded: ModuleNotFoundError")
