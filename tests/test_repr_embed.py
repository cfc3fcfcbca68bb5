"""Maps of codes and the Embedding Projector bundle, checked the way the projector reads it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from caekit.data.datasets import load_dataset
from caekit.errors import ConfigError
from caekit.evaluate.embed import check_projector, embed, export_projector, map_2d
from caekit.models import create_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", image_size=16)


@pytest.mark.slow
def test_embed_writes_maps_codes_and_a_projector_bundle(digits, tmp_path: Path) -> None:
    model = create_model("cae28", input_shape=[1, 16, 16]).eval()
    result = embed(model, digits, tmp_path, max_points=150, thumbnails=10, progress=False)
    assert result.codes.shape == (150, model.code_size) and result.labels.shape == (150,)
    assert set(result.maps) == {"tsne", "pca"} and result.maps["tsne"].shape == (150, 2)
    for name in ("tsne", "pca"):
        with Image.open(result.paths[name]) as picture:
            assert picture.size[0] > 300
    saved = np.load(result.paths["codes"])
    np.testing.assert_allclose(saved["codes"], result.codes)

    # the bundle, read back as files: D numbers per row, a header then one metadata row per point, a square sprite
    tensors = np.loadtxt(result.paths["tensors"], delimiter="\t")
    assert tensors.shape == (150, model.code_size)
    np.testing.assert_allclose(tensors, result.codes, rtol=1e-4, atol=1e-5)
    lines = result.paths["metadata"].read_text().splitlines()
    assert lines[0] == "label\tclass" and len(lines) == 151
    assert lines[1].split("\t")[0] == str(result.labels[0])
    with Image.open(result.paths["sprite"]) as sprite:
        assert sprite.size == (math.ceil(math.sqrt(150)) * 16,) * 2
    config = result.paths["config"].read_text()
    assert "single_image_dim: 16" in config and "tensors.tsv" in config
    found = check_projector(tmp_path / "projector")
    assert found["points"] == 150 and found["dims"] == model.code_size and found["thumb"] == (16, 16)


def test_check_projector_catches_mismatched_files(tmp_path: Path) -> None:
    codes = np.random.default_rng(0).normal(size=(20, 3))
    labels = np.arange(20) % 2
    paths = export_projector(codes, labels, ["even", "odd"], tmp_path, torch.zeros(20, 1, 8, 8, dtype=torch.uint8))
    assert check_projector(tmp_path)["points"] == 20
    lines = paths["metadata"].read_text().splitlines()
    paths["metadata"].write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(ConfigError, match="metadata rows"):
        check_projector(tmp_path)


def test_map_2d_pca_and_errors() -> None:
    x = np.random.default_rng(0).normal(size=(30, 5))
    x[:, 0] *= 10
    xy = map_2d(x, "pca")
    assert xy.shape == (30, 2)
    assert abs(np.corrcoef(xy[:, 0], x[:, 0])[0, 1]) > 0.95  # the first PC is the wide dimension
    with pytest.raises(ConfigError):
        map_2d(x, "umap")
    with pytest.raises(ConfigError):
        export_projector(np.zeros((400, 2)), np.zeros(400, int), ["a"], Path("unused"), torch.zeros(400, 1, 500, 500))
