"""``caekit export``: a trained model for deployment (ONNX, TorchScript, a ``torch.export`` ExportedProgram) or for
sharing (the Hugging Face Hub format), the whole model or its encoder or decoder alone.

Every graph export takes a dynamic batch size and is checked before it is kept: the exported file is run on a batch of
another size (ONNX with onnxruntime) and must agree with PyTorch to within ``TOLERANCE``. Files are written beside
nothing of the user's: a target that exists is refused.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from caekit.errors import ConfigError
from caekit.fileio import publish
from caekit.inference import load, output_folder

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "exported-program": ".pt2", "hub": ""}
PARTS = ("model", "encoder", "decoder")
TOLERANCE = 1e-4  # max absolute difference from PyTorch on images in [0, 1]


@dataclass
class Exported:
    path: Path
    part: str
    format: str
    input_shape: tuple[int, ...]  # of one example, batch first
    max_difference: float | None  # against PyTorch on a batch of another size (None for the Hub format)


class _Method(nn.Module):
    """One method of a model (``encode``, ``decode``) as a module's forward, for the exporters."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self.model, self.method)(x)


def _part(model: nn.Module, part: str, image_shape: tuple[int, int, int]) -> tuple[nn.Module, Tensor]:
    """The module to export and an example input of batch 2."""
    if part not in PARTS:
        raise ConfigError(f"unknown part '{part}'; choose one of: {', '.join(PARTS)}")
    generator = not hasattr(model, "encode") and hasattr(model, "latent_dim")  # a GAN: its forward takes z
    images = torch.rand(2, *image_shape, generator=torch.Generator().manual_seed(0))
    if part == "model":
        example = torch.randn(2, int(getattr(model, "latent_dim", 0))) if generator else images
        return model, example
    if generator:
        raise ConfigError(
            f"{type(model).__name__} is a generator without an encoder: export the whole model (its forward is z -> image)"
        )
    for method in ("encode", *(["decode"] if part == "decoder" else [])):
        if not callable(getattr(model, method, None)):
            raise ConfigError(f"{type(model).__name__} has no {method}(): it has no {part} to export on its own")
    if part == "encoder":
        return _Method(model, "encode"), images
    with torch.no_grad():
        codes = model.encode(images)  # type: ignore[operator]
        model.decode(codes)  # type: ignore[operator]  # refuses (one line) where a code alone cannot be decoded
    return _Method(model, "decode"), codes


def _compare(reference: nn.Module, run: Any, example: Tensor) -> float:
    """Max absolute difference between PyTorch and ``run`` on a batch of 3 like ``example`` (a size not exported)."""
    batch = torch.cat([example, example[:1] * 0.5])
    with torch.no_grad():
        expected = reference(batch).float()
    return float((torch.as_tensor(run(batch)).float() - expected).abs().max())


def _write(module: nn.Module, example: Tensor, fmt: str, target: Path) -> float:
    """Export ``module`` to ``target`` (a temporary path) and return its difference from PyTorch."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    dynamic = ({0: batch},)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # exporters' deprecation and tracer notes: the check below is what counts
        if fmt == "exported-program":
            program = torch.export.export(module, (example,), dynamic_shapes=dynamic)
            torch.export.save(program, str(target))
            return _compare(module, lambda x: torch.export.load(str(target)).module()(x), example)
        if fmt == "torchscript":
            traced = torch.jit.trace(module, (example,), check_trace=False)
            traced.save(str(target))
            return _compare(module, lambda x: torch.jit.load(str(target))(x), example)
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'caekit[export]'") from None
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines are not the user's output
            torch.onnx.export(
                module,
                (example,),
                str(target),
                dynamo=True,
                dynamic_shapes=dynamic,
                input_names=["input"],
                output_names=["output"],
                verbose=False,
            )
        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        return _compare(module, lambda x: session.run(None, {"input": x.numpy()})[0], example)


def export_run(run: str | Path, fmt: str = "onnx", out: str | Path | None = None, part: str = "model") -> Exported:
    """Export a run folder's best checkpoint (or a checkpoint file) as ``fmt``; ``out`` defaults to
    ``<run>/export/<part><suffix>`` (a folder for the Hub format)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    target = Path(out) if out is not None else output_folder(run) / "export" / f"{part}{FORMATS[fmt]}"
    if fmt == "hub":
        if part != "model":
            raise ConfigError("the Hub format holds the whole model; leave --part at model")
        from caekit.hub import save_pretrained

        return Exported(save_pretrained(run, target), part, fmt, (), None)
    if target.exists():
        raise ConfigError(f"'{target}' exists; caekit does not overwrite files: choose another --out or remove it")
    model, meta = load(run)
    module, example = _part(model.float().eval(), part, tuple(meta["image_shape"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        difference = _write(module, example, fmt, Path(temporary))
        if not difference <= TOLERANCE:
            raise ConfigError(
                f"the exported {part} differs from PyTorch by {difference:.3g} (more than {TOLERANCE}); nothing was kept"
            )
        publish(Path(temporary), target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return Exported(target, part, fmt, tuple(example.shape), difference)


__all__ = ["FORMATS", "PARTS", "Exported", "export_run"]
