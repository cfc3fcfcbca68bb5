"""Greedy layer-wise training of a stacked autoencoder: one ordinary run per stage, then end-to-end fine-tuning."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from caekit.config import RunConfig, parse_config, resolve_config
from caekit.errors import ConfigError
from caekit.runner import train_run
from caekit.training.stage import GreedyStage


@dataclass
class StackedResult:
    stage_runs: list[Path]
    finetune_run: Path | None
    model: nn.Module
    test: dict[str, float]
    stage_tests: list[dict[str, float]]


def train_stacked(
    config: RunConfig | dict[str, Any] | str | Path,
    stages: list[dict[str, Any]] | None = None,
    stage_epochs: int | None = None,
    finetune_epochs: int | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
) -> StackedResult:
    """Greedy layer-wise training: stage k learns to reconstruct the frozen codes of stages < k (one run each),
    then the stacked encoders and decoders are fine-tuned end to end (``finetune_epochs`` 0 skips it). With a
    ``denoise`` objective (or ``stage`` with ``noise``) each stage reconstructs its clean input from a corrupted copy,
    a stacked denoising autoencoder, and the end-to-end fine-tuning denoises images.

    ``config`` is an ordinary run config (data, optim, train, runs_dir, name); its model and objective are set here.
    ``stages`` default to the config's ``model.args.stages``.
    """
    resolved = resolve_config(config, overrides)
    stages = stages or resolved.model.args.get("stages")
    if not stages:
        raise ConfigError(
            "greedy stacking needs model.args.stages (or stages), e.g. [{type: fc, units: 256}, {type: fc, units: 64}]"
        )
    base = resolved.model_dump(mode="json")
    name = base.get("name") or "stacked"
    init: str | None = None
    runs: list[Path] = []
    tests: list[dict[str, float]] = []
    result = None
    # the stacked model's own options (e.g. input_shape, output_activation) carry over; another model's do not
    model_args = dict(base["model"].get("args", {})) if base["model"]["name"] == "stacked" else {}
    objective_args = base["objective"]["args"] if base["objective"]["name"] in ("reconstruct", "stage", "denoise") else {}
    loss = objective_args.get("loss", "mse")
    # a denoising objective makes a stacked denoising autoencoder: every stage, and the fine-tuning, see corrupted inputs
    noise = {k: objective_args[k] for k in ("noise", "level", "seed") if k in objective_args}
    if base["objective"]["name"] == "denoise":
        noise.setdefault("noise", "gaussian")
    if noise and "noise" not in noise:
        raise ConfigError(
            "a stage objective with a noise level needs its kind too: objective.args.noise (gaussian, salt_pepper or mask)"
        )
    stage_objective = GreedyStage(loss, **noise)
    for k in range(len(stages)):  # before any stage trains, not after the first ones have
        stage_objective.check(stages, k)

    def run_config(suffix: str, train_stage: int | None, objective: str, epochs: int | None) -> dict[str, Any]:
        cfg = copy.deepcopy(base)
        cfg["name"] = f"{name}-{suffix}"
        cfg["model"] = {"name": "stacked", "args": {**model_args, "stages": stages, "train_stage": train_stage, "init": init}}
        cfg["objective"] = {"name": objective, "args": {"loss": loss, **noise}}
        if epochs:
            cfg["train"]["epochs"] = epochs
        return cfg

    for k in range(len(stages)):
        result = train_run(parse_config(run_config(f"stage{k + 1}", k, "stage", stage_epochs)))
        tests.append(result.test)
        if result.run is None:
            raise ConfigError("greedy stacking keeps each stage's run folder; it cannot run with write_run=False")
        runs.append(result.run.path)
        init = str(result.run.path.resolve())  # absolute, so the stored model arguments work from any folder
    assert result is not None
    finetune_run = None
    if finetune_epochs != 0:
        result = train_run(parse_config(run_config("finetune", None, "denoise" if noise else "reconstruct", finetune_epochs)))
        finetune_run = result.run.path if result.run else None
    return StackedResult(runs, finetune_run, result.model, result.test, tests)
