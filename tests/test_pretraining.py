"""Pre-training that pays: masked autoencoding, the fine-tuning recipe's switches, and label budgets in compare."""

from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from caekit.config import ObjectiveConfig, OptimConfig, TrainConfig
from caekit.data.splits import make_splits
from caekit.errors import ConfigError
from caekit.models import create_model
from caekit.runner import engine_for, fit
from caekit.training.callbacks import EpochEnd
from caekit.training.engine import lr_factor
from caekit.training.masked import MaskedReconstruct, patch_mask, remasked
from caekit.training.supervised import Classify, layer_depths
from caekit.workflows.compare import load_compare_config, run_compare, stretch_to_min_steps


def _patch_values(mask: torch.Tensor, patch: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Each patch's share hidden ([N, patches]) and its pixels, of a [N, 1, H, W] mask (border patches cut short)."""
    n, _, h, w = mask.shape
    cells = [mask[:, 0, i : i + patch, j : j + patch].reshape(n, -1) for i in range(0, h, patch) for j in range(0, w, patch)]
    return torch.stack([c.float().mean(1) for c in cells], 1), cells


def test_patch_mask_hides_exactly_the_requested_share() -> None:
    # 8x8 in 4x4 patches: 4 patches, half of them hidden, each patch all hidden or all seen
    mask = patch_mask((5, 1, 8, 8), 4, 0.5, torch.Generator().manual_seed(0))
    means, cells = _patch_values(mask, 4)
    assert all(((c == 0) | (c == 1)).all() and (c == c[:, :1]).all() for c in cells)
    assert (means.sum(1) == 2).all() and mask.sum() == 5 * 2 * 16
    # 10x10 in 4x4 patches: 3x3 patches, the last row and column cut by the border; round(0.6 * 9) = 5 hidden
    mask = patch_mask((64, 1, 10, 10), 4, 0.6, torch.Generator().manual_seed(1))
    means, _ = _patch_values(mask, 4)
    assert (means.sum(1) == 5).all()
    assert means.mean(0).min() > 0.3  # every patch position gets hidden in some images: the choice is random


def test_masked_loss_counts_hidden_pixels_only() -> None:
    objective = MaskedReconstruct(ratio=0.5, patch=4)
    target = torch.rand(3, 2, 8, 8)
    mask = patch_mask(tuple(target.shape), 4, 0.5, torch.Generator().manual_seed(2))
    garbage = torch.rand_like(target)
    right_where_hidden = torch.where(mask.bool().expand_as(target), target, garbage)
    assert objective.masked_loss(right_where_hidden, target, mask).abs().max() == 0
    off_by_a_tenth = torch.where(mask.bool().expand_as(target), target + 0.1, garbage)
    assert objective.masked_loss(off_by_a_tenth, target, mask) == pytest.approx(torch.full((3,), 0.01), abs=1e-6)
    # with normalised targets an affine change of a hidden patch costs nothing, a shuffled one does
    normalised = MaskedReconstruct(ratio=0.5, patch=4, norm_targets=True)
    assert (
        normalised.masked_loss(torch.where(mask.bool().expand_as(target), 0.5 * target + 0.2, garbage), target, mask).max() < 1e-4
    )
    assert normalised.masked_loss(garbage, target, mask).min() > 0.5


def test_remask_keeps_hidden_positions_empty_in_the_encoder() -> None:
    model = create_model("cae28", input_shape=(1, 16, 16), upsample="nearest")
    x = torch.rand(2, 1, 16, 16)
    mask = patch_mask(tuple(x.shape), 4, 0.75, torch.Generator().manual_seed(3))
    first_conv = next(m for m in model.encoder.modules() if isinstance(m, nn.Conv2d))

    def first_conv_output(remask: bool) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        with torch.no_grad(), remasked(model, 1 - mask) if remask else contextlib.nullcontext():
            probe = first_conv.register_forward_hook(lambda _m, _i, out: seen.append(out))  # after remasked's own hook
            model.encoder(x * (1 - mask))
            probe.remove()
        return seen[0]

    hidden = mask.bool().expand_as(first_conv_output(False))
    assert first_conv_output(False)[hidden].abs().sum() > 0  # a plain convolution spreads into hidden patches
    assert first_conv_output(True)[hidden].abs().sum() == 0
    assert first_conv_output(True)[~hidden].abs().sum() > 0
    assert not any(m._forward_hooks for m in model.modules())  # the hooks leave with the block


def test_masked_objective_trains_on_real_digits() -> None:
    splits = make_splits("digits", image_size=16, val_fraction=0.1, seed=0)
    model = create_model("cae28", input_shape=(1, 16, 16), upsample="nearest")
    objective = MaskedReconstruct(ratio=0.6, patch=4)
    done = fit(model, objective, splits.train, splits.val, TrainConfig(epochs=4, batch_size=64, progress=False, verbose=False))
    losses = [row["val_loss"] for row in done.history]
    assert losses[-1] < 0.8 * losses[0]
    assert 0 < done.history[-1]["val_masked_psnr"] < done.history[-1]["val_psnr"] + 10


def test_masked_objective_refuses_bad_settings() -> None:
    with pytest.raises(ConfigError, match="ratio"):
        MaskedReconstruct(ratio=1.0)
    with pytest.raises(ConfigError, match="patch"):
        MaskedReconstruct(patch=0)
    with pytest.raises(ConfigError, match="norm_targets"):
        MaskedReconstruct(norm_targets=True, loss="bce")


def test_lr_factor_holds_warms_up_then_follows_the_schedule() -> None:
    factors = [lr_factor(e, hold=2, warmup=2, epochs=10, scheduler="cosine", step_size=1, gamma=0.1) for e in range(10)]
    assert factors[:4] == [0.0, 0.0, 0.5, 1.0]
    assert factors[4] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0 / 6)))
    assert factors[7] == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 6)))
    assert lr_factor(5, hold=0, warmup=0, epochs=10, scheduler="step", step_size=2, gamma=0.5, scale=0.25) == 0.25 * 0.5**2


def _classifier() -> nn.Module:
    return create_model("encoder_classifier", autoencoder="cae28", num_classes=10, input_shape=(1, 16, 16))


def test_layer_decay_builds_one_group_per_encoder_layer() -> None:
    model = _classifier()
    layers = layer_depths(model.encoder)
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert len(layers) == len(convs) == 3
    assert sum(len(group) for group in layers) == sum(1 for p in model.encoder.parameters() if p.requires_grad)
    objective = Classify(layer_decay=0.5)
    engine = engine_for(model, objective, TrainConfig(device="cpu", progress=False), OptimConfig(lr=1e-3))
    groups = engine.optimizers["model"].param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-3 * 0.5, 1e-3 * 0.25, 1e-3 * 0.125])
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in groups[0]["params"]} == head
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in layers[-1]}  # the top layer decays least
    engine.close()
    with pytest.raises(ConfigError, match="layer_decay"):
        Classify(layer_decay=1.5)


def test_linear_probe_epochs_hold_the_encoder_then_release_it() -> None:
    splits = make_splits("digits", image_size=16, val_fraction=0.1, seed=0, limit=300)
    model = _classifier()
    start = [p.detach().clone() for p in model.encoder.parameters()]
    head_start = [p.detach().clone() for p in model.head.parameters()]
    moved: list[tuple[bool, bool]] = []

    def after_epoch(_epoch: int, _row: dict[str, float]) -> None:
        encoder = any(not torch.equal(a, p) for a, p in zip(start, model.encoder.parameters()))
        head = any(not torch.equal(a, p) for a, p in zip(head_start, model.head.parameters()))
        moved.append((encoder, head))

    objective = Classify(linear_probe_epochs=1)
    train = TrainConfig(epochs=2, batch_size=32, device="cpu", progress=False, verbose=False, warmup_epochs=1)
    engine = engine_for(model, objective, train, OptimConfig(), callbacks=[EpochEnd(after_epoch)])
    try:
        engine.fit(splits.train, splits.val)
    finally:
        engine.close()
    assert moved == [(False, True), (True, True)]


def test_min_steps_stretches_every_epoch_count_of_the_recipe() -> None:
    """3 steps an epoch and at least 1,000 steps: 334 epochs, and patience, warm-up and linear probing scaled alike
    (a patience of 10 epochs left as it was stopped 10-label runs after about 50 of their 1,000 steps)."""
    train = TrainConfig(epochs=30, patience=10, warmup_epochs=2)
    objective = ObjectiveConfig(name="classify", args={"linear_probe_epochs": 5, "label_smoothing": 0.1})
    stretch_to_min_steps(train, objective, steps_per_epoch=3, min_steps=1000)
    factor = 334 / 30
    assert train.epochs == 334
    assert (train.patience, train.warmup_epochs) == (math.ceil(10 * factor), math.ceil(2 * factor)) == (112, 23)
    assert objective.args == {"linear_probe_epochs": math.ceil(5 * factor), "label_smoothing": 0.1}
    assert train.step_size == 10  # unused without a step schedule, so left as it was
    stepped = TrainConfig(epochs=30, scheduler="step", step_size=10)
    stretch_to_min_steps(stepped, ObjectiveConfig(name="classify"), steps_per_epoch=3, min_steps=1000)
    assert stepped.step_size == 112
    enough = TrainConfig(epochs=40, patience=10)  # 40 epochs of 29 steps are already 1,160 steps: nothing changes
    stretch_to_min_steps(enough, ObjectiveConfig(name="classify"), steps_per_epoch=29, min_steps=1000)
    assert (enough.epochs, enough.patience, enough.warmup_epochs) == (40, 10, 0)


@pytest.mark.slow
def test_label_budget_sweep_on_digits(tmp_path: Path) -> None:
    config = load_compare_config(
        {
            "name": "budgets",
            "runs_dir": str(tmp_path),
            "data": {"name": "digits", "image_size": 16, "limit": 600},
            "sample": {"per_class": [3, 10]},
            "seeds": [0, 1],
            "val_fraction": 0.2,
            "test_limit": 150,
            "min_steps": 20,
            "pretrain": {
                "masked": {
                    "model": {"name": "cae28", "args": {"upsample": "nearest"}},
                    "objective": {"name": "masked", "args": {"ratio": 0.6, "patch": 4}},
                    "train": {"epochs": 2, "progress": False},
                }
            },
            "train": {"epochs": 2, "batch_size": 16, "progress": False},
            "models": [
                {
                    "label": "masked CAE, fine-tuned",
                    "pretrained": "masked",
                    "paired_with": "scratch",
                    "model": {"name": "encoder_classifier", "args": {"mode": "finetune"}},
                    "objective": {"args": {"layer_decay": 0.75, "linear_probe_epochs": 1, "label_smoothing": 0.1}},
                    "train": {"warmup_epochs": 1, "scheduler": "cosine"},
                },
                {"label": "scratch", "model": {"name": "encoder_classifier", "args": {"autoencoder": "cae28"}}},
            ],
        }
    )
    result = run_compare(config, progress=None)
    with (result.folder / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2
    assert sorted({int(r["labelled"]) for r in rows}) == [30, 100]
    epochs = {r["sample"]: int(r["epochs"]) for r in rows}  # min_steps: the smaller sample trains for more epochs
    assert epochs["3 labels per class"] > epochs["10 labels per class"] >= 2
    summary = {(s["sample"], s["model"]): s for s in result.summary}
    assert len(summary) == 4
    for budget in ("3 labels per class", "10 labels per class"):
        mine = {int(r["seed"]): float(r["accuracy"]) for r in rows if r["sample"] == budget and r["model"].startswith("masked")}
        twin = {int(r["seed"]): float(r["accuracy"]) for r in rows if r["sample"] == budget and r["model"] == "scratch"}
        diffs = np.array([mine[s] - twin[s] for s in (0, 1)])
        entry = summary[(budget, "masked CAE, fine-tuned")]
        assert entry["accuracy_diff_mean"] == pytest.approx(diffs.mean(), abs=1e-9)
        assert entry["accuracy_diff_se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(2), abs=1e-9)
        assert "accuracy_diff_mean" not in summary[(budget, "scratch")]
    assert result.paths["budgets"].stat().st_size > 10_000
    assert "Δ accuracy (paired)" in (result.folder / "summary.md").read_text()
    assert (result.folder / "pretrain" / "masked" / "masked.png").exists()


def test_budget_and_pairing_settings_are_checked() -> None:
    base = {"data": {"name": "digits"}, "models": [{"label": "x", "model": {"name": "lenet5"}}]}
    assert [b.per_class for b in load_compare_config({**base, "sample": {"per_class": [10, 30]}}).sample.budgets()] == [10, 30]
    with pytest.raises(ConfigError, match="at least one budget"):
        load_compare_config({**base, "sample": {"per_class": []}})
    with pytest.raises(ConfigError, match="paired_with"):
        load_compare_config(
            {**base, "sample": {"per_class": 5}, "models": [{"label": "x", "paired_with": "y", "model": {"name": "lenet5"}}]}
        )


def test_the_results_table_has_every_rows_columns() -> None:
    from caekit.workflows.compare import _csv

    table = _csv([{"model": "scratch", "accuracy": 0.5}, {"model": "pre-trained", "accuracy": 0.6, "paired_with": "scratch"}])
    assert table.splitlines() == ["model,accuracy,paired_with", "scratch,0.5,", "pre-trained,0.6,scratch"]
