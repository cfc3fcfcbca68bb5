"""The Python API, mirrored one to one by the CLI: train, load, encode, reconstruct.

    import caekit
    result = caekit.train({"model": {"name": "cae28"}, "data": {"name": "mnist", "root": "data"}})
    model, meta = caekit.load(result.run.path)
    codes = caekit.encode(model, images)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from caekit import viz
from caekit.config import RunConfig, dump_config, load_config, parse_config, with_overrides
from caekit.data.datasets import fit_square, read_image
from caekit.data.imageset import ImageSet
from caekit.data.splits import Splits, make_splits
from caekit.errors import CheckpointError, DataError
from caekit.models.registry import MODELS, create_model
from caekit.runs import RunFolder
from caekit.train import distributed
from caekit.checkpoint import read_checkpoint, restore
from caekit.train.engine import Engine, resolve_device
from caekit.train.objectives import Objective, build_objective

CHECKPOINT_FORMAT = "caekit-checkpoint-1"


@dataclass
class TrainResult:
    run: RunFolder | None
    model: nn.Module
    history: list[dict[str, float]]
    test: dict[str, float]
    splits: Splits


def resolve_config(config: RunConfig | dict[str, Any] | str | Path | None, overrides: dict[str, Any] | list[str] | None = None) -> RunConfig:
    if config is None:
        config = RunConfig()
    elif isinstance(config, (str, Path)):
        config = load_config(config)
    elif isinstance(config, dict):
        config = parse_config(config)
    return with_overrides(config, overrides) if overrides else config


def model_arguments(name: str, args: dict[str, Any], image_shape: tuple[int, int, int], num_classes: int | None = None) -> dict[str, Any]:
    """All of a builder's arguments: those given, ``input_shape`` and ``num_classes`` from the data when unset, and
    the builder's defaults for the rest, so that a checkpoint keeps building the same model when a default changes."""
    args = dict(args)
    params = inspect.signature(MODELS.get(name)).parameters
    if "input_shape" in params and args.get("input_shape") is None:
        args["input_shape"] = list(image_shape)
    if num_classes is not None and "num_classes" in params and args.get("num_classes") is None:
        args["num_classes"] = num_classes
    for key, param in params.items():
        default = list(param.default) if isinstance(param.default, tuple) else param.default
        if key not in args and isinstance(default, (bool, int, float, str, list, type(None))):
            args[key] = default
    return args


def _open_run(config: RunConfig, resume: str | Path | None) -> RunFolder | None:
    """Rank 0 creates the run folder and tells the other ranks where it is."""
    info = distributed.current()
    path = None
    if resume is not None:
        path = str(RunFolder.existing(resume).path)
    elif info.is_main:
        path = str(RunFolder.create(config.runs_dir, config.name, f"{config.model.name}-{config.data.name}").path)
    if info.enabled:
        box = [path]
        torch.distributed.broadcast_object_list(box, src=0)
        path = box[0]
    return RunFolder(path) if path else None


def train(config: RunConfig | dict[str, Any] | str | Path | None = None, overrides: dict[str, Any] | list[str] | None = None,
          resume: str | Path | None = None, on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
          write_run: bool = True) -> TrainResult:
    """Train a model from a config (object, mapping or YAML path) and leave a run folder with pictures.

    ``resume`` continues the run folder given (its config.yaml, overridden by ``overrides``, e.g. more epochs).
    """
    if resume is not None:
        config = load_config(RunFolder.existing(resume).config_path)
    cfg = resolve_config(config, overrides)
    distributed.setup(resolve_device(cfg.train.device).type)
    splits = make_splits(seed=cfg.train.seed, **cfg.data.model_dump())
    args = model_arguments(cfg.model.name, cfg.model.args, splits.train.shape, len(splits.train.classes))
    torch.manual_seed(cfg.train.seed)
    model = create_model(cfg.model.name, **args)
    objective = build_objective(cfg.objective.name, **cfg.objective.args)
    run = _open_run(cfg, resume) if write_run else None
    if run is not None and distributed.current().is_main:
        run.write_config(dump_config(cfg))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "model": {"name": cfg.model.name, "args": args},
        "spec": model.spec.model_dump(mode="json") if hasattr(model, "spec") else None,
        "objective": cfg.objective.model_dump(),
        "data": cfg.data.model_dump(),
        "classes": splits.train.classes,
        "image_shape": list(splits.train.shape),
        "normalisation": {"input": "uint8 / 255", "range": [0.0, 1.0]},
    }
    engine = Engine(model, objective, cfg.train, cfg.optim, run, meta, on_epoch_end)
    try:
        history = engine.fit(splits.train, splits.val, resume=resume is not None)
        if run is not None and distributed.current().is_main and run.checkpoint("best").is_file():
            tensors, best_meta = read_checkpoint(run.checkpoint("best"))
            restore(tensors, best_meta, engine.model)
        distributed.broadcast_module(engine.model)  # other ranks (maybe on other machines) test rank 0's best weights
        test = engine.evaluate(splits.test)
    finally:
        engine.close()
    model = engine.model.eval()
    if run is not None and distributed.current().is_main:
        run.write_json("results.json", {"test": test, "epochs": len(history), "best_epoch": _best_epoch(history, objective)})
        draw_run_pictures(run, model, objective, splits, history)
    return TrainResult(run, model, history, test, splits)


def _best_epoch(history: list[dict[str, float]], objective: Objective) -> int | None:
    rows = [row for row in history if objective.monitor in row]
    return int(min(rows, key=objective.rank)["epoch"]) if rows else None


def evaluate_run(path: str | Path, checkpoint: str = "best", split: str = "test", pictures: bool = True) -> dict[str, float]:
    """Evaluate a run's best (or last) checkpoint on its test or validation split, e.g. after stopping it early.

    Rewrites results.json and, with ``pictures``, the run's pictures from that checkpoint.
    """
    run = RunFolder.existing(path)
    cfg = load_config(run.config_path)
    splits = make_splits(seed=cfg.train.seed, **cfg.data.model_dump())
    data = splits.test if split == "test" else splits.val
    if data is None:
        raise DataError(f"run '{run.path}' has no {split} split")
    model, _ = load(run.best_or_last() if checkpoint == "best" else run.checkpoint(checkpoint))
    objective = build_objective(cfg.objective.name, **cfg.objective.args)
    engine = Engine(model, objective, cfg.train, cfg.optim)
    metrics = engine.evaluate(data)
    history = run.read_metrics()
    if distributed.current().is_main:
        run.write_json("results.json", {split: metrics, "checkpoint": checkpoint, "epochs": len(history),
                                         "best_epoch": _best_epoch(history, objective)})
        if pictures:
            draw_run_pictures(run, engine.model.eval(), objective, splits, history)
    return metrics


def draw_run_pictures(run: RunFolder, model: nn.Module, objective: Any, splits: Splits, history: list[dict[str, float]]) -> list[Path]:
    """curves.png, plus whatever the objective and the model can show (reconstructions, filters, feature maps)."""
    device = next(model.parameters()).device
    picks = torch.linspace(0, len(splits.test) - 1, min(10, len(splits.test))).long()  # spread over the classes
    images = splits.test.subset(picks).unit_images().to(device)
    paths = [viz.curves(history, run.picture("curves.png"), title=run.path.name)] if history else []
    paths += objective.pictures(model, images, run.path)
    encoder = getattr(model, "encoder", None)
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is not None:
        paths.append(viz.filters(first_conv.weight, run.picture("filters.png")))
    if hasattr(encoder, "feature_maps"):
        with torch.no_grad():
            maps = [(name, fmap[0]) for name, fmap in encoder.feature_maps(images[:1])]  # type: ignore[union-attr]
        paths.append(viz.feature_maps(images[0], maps, run.picture("feature_maps.png")))
    return paths


# ------------------------------------------------------------------------------------------- using a trained model


def load(path: str | Path, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A trained model from a run folder (its best checkpoint) or a .safetensors file; nothing is unpickled."""
    path = Path(path)
    checkpoint = RunFolder(path).best_or_last() if path.is_dir() else path
    tensors, meta = read_checkpoint(checkpoint)
    if meta.get("format") != CHECKPOINT_FORMAT or "model" not in meta:
        raise CheckpointError(f"'{checkpoint}' is not a caekit model checkpoint")
    model = create_model(meta["model"]["name"], **meta["model"]["args"])
    restore(tensors, meta, model)
    return model.to(resolve_device(device)).eval(), meta


def _batches_of(images: ImageSet | Tensor, batch_size: int) -> tuple[int, Any]:
    data = images.images if isinstance(images, ImageSet) else images
    return len(data), (data[i : i + batch_size] for i in range(0, len(data), batch_size))


def _as_unit(batch: Tensor, device: torch.device) -> Tensor:
    """uint8 0..255 or float 0..1 -> float 0..1 on ``device``, channels_last for images."""
    batch = batch.to(device)
    batch = batch.float().div_(255) if batch.dtype == torch.uint8 else batch.float()
    return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch


def _inference_ready(model: nn.Module) -> torch.device:
    model.eval()
    model.to(memory_format=torch.channels_last)  # the layout the engine trains in: faster convs and pools
    return next(model.parameters()).device


def encode(model: nn.Module, images: ImageSet | Tensor, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """Flat codes [N, D] for images (an ImageSet, uint8 0..255 or float 0..1 [N, C, H, W])."""
    if not hasattr(model, "encode"):
        raise CheckpointError(f"{type(model).__name__} has no encoder to encode with")
    device = _inference_ready(model)  # outside inference mode: the weights must stay usable for training
    total, chunks = _batches_of(images, batch_size)
    with torch.inference_mode():
        out = [model.encode(_as_unit(chunk, device)).float().cpu()
               for chunk in tqdm(chunks, total=-(-total // batch_size), disable=not progress, desc="encode")]
    return torch.cat(out).numpy()


def reconstruct(model: nn.Module, images: ImageSet | Tensor, batch_size: int = 128) -> Tensor:
    """Reconstructions in [0, 1] (float [N, C, H, W]) of images given as in ``encode``."""
    device = _inference_ready(model)
    _, chunks = _batches_of(images, batch_size)
    with torch.inference_mode():
        return torch.cat([model(_as_unit(chunk, device)).float().cpu().contiguous() for chunk in chunks])


def read_images(paths: Sequence[str | Path], shape: Sequence[int], fit: str = "pad") -> Tensor:
    """Image files as uint8 [N, C, H, W] fitted to ``shape`` (channels, height, width); unreadable files are errors."""
    channels, size = shape[0], shape[1]
    arrays = []
    for path in paths:
        img, why = read_image(Path(path))
        if img is None:
            raise DataError(f"cannot read image '{path}': {why}")
        img = fit_square(img.convert("L" if channels == 1 else "RGB"), fit, size)
        arr = np.asarray(img)
        arrays.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays)).contiguous()
