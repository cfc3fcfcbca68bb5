"""Export for deployment and sharing: ONNX (run with onnxruntime), TorchScript, ExportedProgram, the Hub format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from caekit.errors import ConfigError
from caekit.inference import load
from caekit.runner import train_run
from caekit.workflows.export import TOLERANCE, export_run
from conftest import run_cli


def _train(tmp_path: Path, name: str, model: dict, objective: str = "reconstruct") -> Path:
    from caekit.config import resolve_config

    cfg = resolve_config(
        {
            "name": name,
            "runs_dir": str(tmp_path / "runs"),
            "model": model,
            "data": {"name": "digits", "limit": 200, "image_size": 16},
            "objective": {"name": objective},
            "train": {"epochs": 1, "batch_size": 32, "progress": False, "verbose": False},
        }
    )
    result = train_run(cfg)
    assert result.run is not None
    return result.run.path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("export")
    return {
        # max-unpooling with the pool's switches, and a decoder whose last layer is the by-taps transposed convolution
        "max": _train(tmp, "max", {"name": "cae28", "args": {"upsample": "max"}}),
        "nearest": _train(tmp, "nearest", {"name": "cae28", "args": {"upsample": "nearest"}}),
        "dcgan": _train(tmp, "dcgan", {"name": "dcgan", "args": {"width": 32, "latent_dim": 8}}, "gan"),
    }


def test_onnx_runs_in_onnxruntime_at_any_batch_size(runs: dict[str, Path], tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    done = export_run(runs["max"], "onnx", tmp_path / "cae.onnx")
    assert done.max_difference is not None and done.max_difference <= TOLERANCE
    model, _ = load(runs["max"])
    session = onnxruntime.InferenceSession(str(done.path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = torch.rand(batch, 1, 16, 16)
        (out,) = session.run(None, {"input": x.numpy()})
        assert out.shape == (batch, 1, 16, 16)
        assert torch.allclose(torch.from_numpy(out), model(x).detach(), atol=TOLERANCE)


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
def test_graph_exports_match_pytorch(fmt: str, runs: dict[str, Path], tmp_path: Path) -> None:
    # the generator's last layer is caekit's by-taps transposed convolution: exported as PyTorch's own operator
    done = export_run(runs["dcgan"], fmt, tmp_path / f"g{fmt}")
    assert done.input_shape == (2, 8) and done.max_difference is not None and done.max_difference <= TOLERANCE
    encoder = export_run(runs["nearest"], fmt, tmp_path / f"e{fmt}", part="encoder")
    decoder = export_run(runs["nearest"], fmt, tmp_path / f"d{fmt}", part="decoder")
    model, _ = load(runs["nearest"])
    assert encoder.input_shape == (2, 1, 16, 16) and decoder.input_shape == (2, model.code_size)
    if fmt == "exported-program":
        program = torch.export.load(str(decoder.path)).module()
        codes = model.encode(torch.rand(5, 1, 16, 16))
        assert torch.allclose(program(codes), model.decode(codes), atol=TOLERANCE)


def test_what_cannot_be_exported_is_one_line_and_leaves_nothing(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max-unpools with the encoder's switches"):
        export_run(runs["max"], "torchscript", tmp_path / "d.pt", part="decoder")
    with pytest.raises(ConfigError, match="generator without an encoder"):
        export_run(runs["dcgan"], "torchscript", tmp_path / "e.pt", part="encoder")
    mine = tmp_path / "mine.onnx"
    mine.write_text("my own file")
    with pytest.raises(ConfigError, match="does not overwrite"):
        export_run(runs["nearest"], "onnx", mine)
    assert mine.read_text() == "my own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.onnx"]  # no temporary left behind


def test_hub_format_round_trip(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("huggingface_hub")
    from caekit.hub import from_pretrained

    folder = tmp_path / "hub"
    code, _, err = run_cli(["export", str(runs["nearest"]), "--format", "hub", "--out", str(folder)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    assert "library_name: caekit" in card and "| psnr |" in card
    model, meta = from_pretrained(folder)
    original, _ = load(runs["nearest"])
    x = torch.rand(3, 1, 16, 16)
    assert torch.equal(model(x), original(x)) and meta["model"]["name"] == "cae28"
    code, _, err = run_cli(["export", str(runs["nearest"]), "--format", "hub", "--out", str(folder)], capsys)
    assert code == 2 and "not an empty folder" in err  # a second export does not overwrite the first
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no model\.safetensors"):
        from_pretrained(tmp_path / "empty")
