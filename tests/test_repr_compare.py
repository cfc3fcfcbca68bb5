"""The comparison protocol end to end on the tiny config, and the embed/cluster commands on its pre-trained CAE."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from caekit.cli import main
from caekit.errors import ConfigError
from caekit.workflows.compare import load_compare_config, summarise

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "compare-tiny.yaml"


def test_shipped_configs_validate() -> None:
    for name in ("tiny", "mnist", "cifar10", "plankton"):
        config = load_compare_config(ROOT / "configs" / f"compare-{name}.yaml")
        assert config.models and all(e.pretrained is None or e.pretrained in config.pretrain for e in config.models)
    with pytest.raises(ConfigError, match="not under pretrain"):
        load_compare_config(
            {
                "data": {"name": "digits"},
                "sample": {"per_class": 5},
                "models": [{"label": "x", "pretrained": "nope", "model": {"name": "lenet5"}}],
            }
        )
    with pytest.raises(ConfigError, match="exactly one"):
        load_compare_config({"data": {"name": "digits"}, "sample": {}, "models": [{"label": "x", "model": {"name": "lenet5"}}]})


def test_summarise_means_and_spreads() -> None:
    rows = [
        {
            "data": "d",
            "sample": "s",
            "model": "m",
            "seed": s,
            "accuracy": a,
            "precision": a,
            "recall": a,
            "f1": a,
            "weighted_f1": a,
            "seconds": 1.0,
        }
        for s, a in ((0, 0.5), (1, 0.7), (2, 0.9))
    ]
    (summary,) = summarise(rows)
    assert summary["accuracy_mean"] == pytest.approx(0.7) and summary["accuracy_std"] == pytest.approx(0.2)
    assert summary["seeds"] == 3


@pytest.mark.slow
def test_compare_command_on_the_tiny_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(
        [
            "compare",
            str(TINY),
            "--set",
            f"runs_dir={tmp_path}",
            "--set",
            "data.limit=400",
            "--set",
            "test_limit=120",
            "--set",
            "train.epochs=2",
            "--set",
            "pretrain.cae.train.epochs=1",
        ]
    )
    out = capsys.readouterr().out
    folder = tmp_path / "compare-tiny"
    with (folder / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    config = load_compare_config(TINY)
    assert len(rows) == len(config.models) * len(config.seeds)
    assert {r["model"] for r in rows} == {e.label for e in config.models}
    assert all(0 <= float(r["accuracy"]) <= 1 and int(r["labelled"]) == 100 for r in rows)
    summary = (folder / "summary.md").read_text()
    assert "| digits | 10 labels per class | LeNet-5 |" in summary and "±" in summary
    assert "LeNet-5" in out
    assert (folder / "bars.png").stat().st_size > 1000 and len(list(folder.glob("confusion-*.png"))) == len(config.models)
    pretrained = folder / "pretrain" / "cae"
    assert (pretrained / "checkpoints" / "best.safetensors").is_file()

    # the pre-trained CAE, looked at: maps + projector bundle, then clustering of its codes
    main(["embed", "--model", str(pretrained), "--out", str(tmp_path / "emb"), "--max-points", "60", "--method", "pca"])
    assert (tmp_path / "emb" / "pca.png").is_file() and "projector: 60 points" in capsys.readouterr().out
    main(["cluster", "--model", str(pretrained), "--max-points", "120", "--out", str(tmp_path / "clusters.md")])
    table = (tmp_path / "clusters.md").read_text()
    assert table.count("| kmeans |") == 3 and table.count("| agglomerative |") == 3
