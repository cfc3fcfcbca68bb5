"""Run assembly: the one place where a model, its objective, the engine and a run folder are put together.

    RunConfig (+ in-memory splits) --> model + objective --> Engine.fit --> best checkpoint restored --> test
    --> run folder: config.yaml, checkpoints/, metrics.csv, tb/, results.json, pictures

Whoever trains (the API, ``compare``, ``search``, greedy stacking, the judge classifier, the benchmarks) comes
through here, so every run folder has the same files and every checkpoint the same metadata. ``fit`` is the same
engine without a run folder, for quick in-memory training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from caekit import viz
from caekit.checkpoint import model_meta, read_checkpoint, read_meta, restore
from caekit.config import DataConfig, OptimConfig, RunConfig, TrainConfig, dump_config, load_config
from caekit.data.augment import batch_augmenter
from caekit.data.augment import resolve as resolve_augment
from caekit.data.imageset import ImageSet
from caekit.data.splits import Splits, make_splits
from caekit.device import resolve_device
from caekit.errors import DataError
from caekit.inference import run_splits
from caekit.models.pretrained import load_pretrained, pretrained_cfg
from caekit.models.registry import MODELS
from caekit.models.weights import create_checked, load_trained
from caekit.runs import RunFolder
from caekit.spec import PRESETS
from caekit.training import distributed
from caekit.training.callbacks import Callback, EpochEnd, make_loggers
from caekit.training.engine import Engine
from caekit.training.objectives import Objective, build_objective
from caekit.viz import painter

if TYPE_CHECKING:
    from caekit.models.cae import ConvAutoencoder

EpochHook = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    run: RunFolder | None
    model: nn.Module
    history: list[dict[str, float]]
    test: dict[str, float]
    splits: Splits
    seconds: float = 0.0


def model_arguments(
    name: str, args: dict[str, Any], image_shape: tuple[int, int, int], num_classes: int | None = None
) -> dict[str, Any]:
    """All of a builder's arguments: those given, ``input_shape`` and ``num_classes`` from the data when unset, and
    the builder's defaults for the rest, so that a checkpoint keeps building the same model when a default changes."""
    args = dict(args)
    params = MODELS.parameters(name)
    if "input_shape" in params and args.get("input_shape") is None:
        args["input_shape"] = list(image_shape)
    if num_classes is not None and "num_classes" in params and args.get("num_classes") is None:
        args["num_classes"] = num_classes
    for key, param in params.items():
        default = list(param.default) if isinstance(param.default, tuple) else param.default
        if key not in args and isinstance(default, (bool, int, float, str, list, type(None))):
            args[key] = default
    return args


def engine_for(model: nn.Module, objective: Objective, train: TrainConfig, optim: OptimConfig, **options: Any) -> Engine:
    """The engine for one model (``options``: those of ``Engine``); the only place in caekit that constructs one."""
    return Engine(model, objective, train, optim, **options)


@dataclass
class Fitted:
    model: nn.Module
    history: list[dict[str, float]]
    seconds: float


def fit(
    model: nn.Module,
    objective: Objective,
    train: ImageSet,
    val: ImageSet | None = None,
    train_config: TrainConfig | None = None,
    optim: OptimConfig | None = None,
) -> Fitted:
    """Train in memory, without a run folder (the judge classifier, the 8-3-8 encoder, benchmarks); returns the
    model as the last epoch left it, in eval mode."""
    engine = engine_for(model, objective, train_config or TrainConfig(), optim or OptimConfig())
    start = time.perf_counter()
    try:
        history = engine.fit(train, val)
    finally:
        engine.close()
    return Fitted(engine.model.eval(), history, time.perf_counter() - start)


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


def train_run(
    cfg: RunConfig,
    splits: Splits | None = None,
    resume: str | Path | None = None,
    on_epoch_end: EpochHook | None = None,
    write_run: bool = True,
    remake: tuple[DataConfig, int] | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``cfg`` on its dataset (or on ``splits`` given in memory) into a new run folder, or go on with ``resume``.

    The run folder gets the resolved config (the objective's optimiser defaults filled in), checkpoints whose
    metadata say how to rebuild the model, results.json (test metrics, best epoch and the metric that chose it)
    and the pictures; the returned model carries the best checkpoint's weights.

    ``remake`` (data settings and seed) tells how in-memory ``splits`` are made again, for ``inference.run_splits``:
    its train split must hold every image they trained or validated on, and its test split none of them.
    Without it, a run on in-memory splits records that its images cannot be told again.
    """
    distributed.setup(resolve_device(cfg.train.device).type)
    if splits is None:
        splits = make_splits(seed=cfg.train.seed, **cfg.data.split_options())
        remake = (cfg.data, cfg.train.seed)
    given = cfg.model.args
    if cfg.model.pretrained is not None:  # the zoo entry's arguments (a spec), then what the config says
        given = {**pretrained_cfg(cfg.model.name, cfg.model.pretrained).args, **given}
    args = model_arguments(cfg.model.name, given, splits.train.shape, len(splits.train.classes))
    if resume is not None and RunFolder.existing(resume).checkpoint("last").is_file():
        # the model the run was trained as, not what its config's files (a spec edited since) would build today
        args = read_meta(RunFolder.existing(resume).checkpoint("last"))["model"]["args"]
    objective = build_objective(cfg.objective.name, **cfg.objective.args)
    cfg = cfg.model_copy(update={"optim": cfg.optim.resolved(objective.optimizer_defaults())})
    torch.manual_seed(cfg.train.seed)
    model = create_checked(cfg.model.name, args, "model")
    if cfg.model.pretrained is not None and resume is None:
        load_pretrained(model, cfg.model.name, cfg.model.pretrained, args)
    run = _open_run(cfg, resume) if write_run else None
    main = distributed.current().is_main
    if run is not None and main:
        run.write_config(dump_config(cfg))
    spec = cast("ConvAutoencoder", model).spec.model_dump(mode="json") if hasattr(model, "spec") else None
    if spec is not None and isinstance(args.get("spec"), str) and args["spec"] not in PRESETS:
        args = {**args, "spec": spec}  # the spec itself, not its path: the checkpoint builds the same model anywhere, always
    meta = model_meta(
        cfg.model.name, args, spec, cfg.objective.model_dump(), cfg.data.model_dump(), splits.train.classes, splits.train.shape
    )
    meta["provenance"]["device"] = str(resolve_device(cfg.train.device))
    meta["splits"] = (
        {"data": remake[0].model_dump(), "seed": remake[1]} if remake else None
    )  # how inference finds its test images
    augment = batch_augmenter(cfg.data.augment, cfg.objective.name, splits.train.shape)
    listeners = [*callbacks, *([EpochEnd(on_epoch_end)] if on_epoch_end else [])]
    if run is not None and main:  # the trackers write into the run folder, as every file of a run: rank 0 only
        listeners = make_loggers(cfg.train.loggers, run.path, cfg.model_dump(mode="json")) + listeners
    engine = engine_for(model, objective, cfg.train, cfg.optim, run=run, meta=meta, callbacks=listeners, augment=augment)
    if main and cfg.train.verbose:
        print(describe_run(cfg, model, splits, run, engine.device), flush=True)
    start = time.perf_counter()
    try:
        history = engine.fit(splits.train, splits.val, resume=resume is not None)
        seconds = time.perf_counter() - start
        if run is not None and main and run.checkpoint("best").is_file():
            tensors, best_meta = read_checkpoint(run.checkpoint("best"))
            restore(tensors, best_meta, engine.model)
        distributed.broadcast_module(engine.model)  # other ranks (maybe on other machines) test rank 0's best weights
        test = engine.evaluate(splits.test) if splits.test is not None and len(splits.test) else {}
    finally:
        engine.close()
    model = engine.model.eval()
    if run is not None and main:
        write_results(run, objective, history, {"test": test})
        draw_run_pictures(run, model, objective, splits, history)
    return TrainResult(run, model, history, test, splits, seconds)


def describe_run(cfg: RunConfig, model: nn.Module, splits: Splits, run: RunFolder | None, device: torch.device) -> str:
    """The block a run starts with: what trains on what, where, and a preset that adapted to the data."""
    c, h, w = splits.train.shape
    parameters = sum(p.numel() for p in model.parameters())
    lines = [
        f"model  {cfg.model.name}: {parameters:,} parameters" + _code_size(model, splits.train.shape),
        f"data   {splits.describe()}; augmentation {resolve_augment(cfg.data.augment, cfg.objective.name, c)}",
        f"device {device.type}"
        + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else f" ({torch.cuda.get_device_name(device)})"),
        f"run    {run.path if run is not None else '(no run folder)'}",
    ]
    if cfg.model.pretrained is not None:
        lines.insert(1, f"start  the model zoo's {cfg.model.name}.{cfg.model.pretrained} weights")
    preset = PRESETS.get(cfg.model.name)
    if preset is not None and cfg.model.args.get("input_shape") is None and tuple(preset.input_shape) != (c, h, w):
        pc, ph, _ = preset.input_shape
        keep = " and ".join(([f"--image-size {ph}"] if (h, w) != (ph, ph) else []) + ([f"--channels {pc}"] if pc != c else []))
        lines.append(
            f"note   {cfg.model.name} is {'x'.join(map(str, preset.input_shape))}; it was adapted to the data's {c}x{h}x{w} "
            f"(to keep the preset's shape: {keep}, or data.image_size / data.channels in a config)"
        )
    return "\n".join(lines)


def _code_size(model: nn.Module, shape: tuple[int, int, int]) -> str:
    """ ", code 16x1x1 (16 values)" for an autoencoder, from one forward pass in eval mode that leaves the model, its
    batch-norm statistics and the random streams as they were; "" for a model without ``encode``."""
    if not hasattr(model, "encode"):
        return ""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            x = torch.zeros(1, *shape, device=next(model.parameters()).device)
            values = int(model.encode(x).shape[1])  # type: ignore[operator]
            encoder = getattr(model, "encoder", None)
            code = getattr(encoder(x), "code", None) if encoder is not None and not hasattr(model, "posterior") else None
    except (RuntimeError, TypeError, ValueError):
        return ""
    finally:
        model.train(was_training)
    if code is not None and code.dim() == 4 and code[0].numel() == values:
        return f", code {'x'.join(map(str, code.shape[1:]))} ({values} values)"
    return f", code of {values} values"


def best_epoch(history: list[dict[str, float]], objective: Objective) -> int | None:
    """The epoch whose metrics the objective ranks best (the one the best checkpoint holds)."""
    rows = [row for row in history if objective.monitor in row]
    return int(min(rows, key=objective.rank)["epoch"]) if rows else None


def write_results(run: RunFolder, objective: Objective, history: list[dict[str, float]], metrics: dict[str, Any]) -> Path:
    """results.json: the metrics per split, the number of epochs, the best epoch and the metric that picked it."""
    return run.write_json(
        "results.json",
        {
            **metrics,
            "epochs": len(history),
            "best_epoch": best_epoch(history, objective),
            "monitor": objective.monitor,
            "monitor_mode": objective.monitor_mode,
        },
    )


def evaluate_run(path: str | Path, checkpoint: str = "best", split: str = "test", pictures: bool = True) -> dict[str, float]:
    """Evaluate a run's best (or last) checkpoint on its own test or validation split, e.g. after stopping it early.

    Rewrites results.json and, with ``pictures``, the run's pictures from that checkpoint.
    """
    run = RunFolder.existing(path)
    cfg = load_config(run.config_path)
    splits = run_splits(run)
    data = splits.test if split == "test" else splits.val
    if data is None:
        raise DataError(f"run '{run.path}' has no {split} split")
    model, meta = load_trained(run.best_or_last() if checkpoint == "best" else run.checkpoint(checkpoint))
    objective = build_objective(cfg.objective.name, **cfg.objective.args)
    engine = engine_for(model, objective, cfg.train, cfg.optim)
    metrics = engine.evaluate(data)
    engine.close()
    history = run.read_metrics()
    if distributed.current().is_main:
        write_results(run, objective, history, {split: metrics, "checkpoint": checkpoint})
        if pictures:
            epoch = meta.get("train_state", {}).get("epoch")
            draw_run_pictures(run, engine.model.eval(), objective, splits, history, epoch if isinstance(epoch, int) else None)
    return metrics


def draw_run_pictures(
    run: RunFolder,
    model: nn.Module,
    objective: Objective,
    splits: Splits,
    history: list[dict[str, float]],
    epoch: int | None = None,
) -> list[Path]:
    """curves.png, plus whatever the objective and the model can show (reconstructions, filters, feature maps),
    titled with the run and the epoch of the weights shown (default: the best epoch of ``history``)."""
    device = next(model.parameters()).device
    shown = next(part for part in (splits.test, splits.val, splits.train) if part is not None and len(part))
    picks = torch.linspace(0, len(shown) - 1, min(10, len(shown))).long()  # spread over the classes
    images = shown.subset(picks).unit_images().to(device)
    paths = [viz.curves(history, run.picture("curves.png"), title=run.path.name)] if history else []
    epoch = epoch if epoch is not None else best_epoch(history, objective) if history else None
    draw = painter.Titled(f"{run.path.name}, epoch {epoch}" if epoch else run.path.name)
    paths += objective.pictures(model, images, run.path, draw)
    encoder = getattr(model, "encoder", None)
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is not None:
        paths.append(viz.filters(first_conv.weight, run.picture("filters.png")))
    if hasattr(encoder, "feature_maps"):
        with torch.no_grad():
            maps = [(name, fmap[0]) for name, fmap in encoder.feature_maps(images[:1])]  # type: ignore[union-attr]
        if maps:  # an encoder of fully connected stages has no maps to show
            paths.append(viz.feature_maps(images[0], maps, run.picture("feature_maps.png")))
    return paths


__all__ = [
    "Fitted",
    "TrainResult",
    "best_epoch",
    "draw_run_pictures",
    "engine_for",
    "evaluate_run",
    "fit",
    "model_arguments",
    "train_run",
    "write_results",
]
