"""The Full + Sample comparison: pre-train autoencoders on all images without labels ("Full"), sample a few labels
("Sample"), train every listed classifier on that sample, score each on the test split, over several seeds.

    name: compare-mnist
    data: {name: mnist, root: /work/data}
    sample: {per_class: 100}          # or {fraction: 0.01}
    seeds: [0, 1, 2]
    pretrain:
      cae: {model: {name: cae28}, train: {epochs: 10}}
    train: {epochs: 30, batch_size: 64}  # defaults for every classifier
    models:
      - {label: "CAE + FC (fine-tune)", pretrained: cae, model: {name: encoder_classifier, args: {mode: finetune}}}
      - {label: "same net, scratch", model: {name: encoder_classifier, args: {autoencoder: cae28}}}
      - {label: LeNet-5, model: {name: lenet5}}

The test split and the Full set are fixed by ``split_seed``; each seed draws its own labelled sample, validation
part (for picking the best epoch) and initialisation. Writes, under ``runs_dir/name``: ``results.csv`` (one row per
model and seed), ``summary.csv`` and ``summary.md`` (mean and standard deviation over seeds), ``bars.png``, a
confusion matrix per model (summed over seeds) and the run folders of every training.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, Field, PositiveInt, model_validator
from torch import nn

from caekit.checkpoint import read_meta
from caekit.config import (
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    RunConfig,
    StrictModel,
    TrainConfig,
    read_mapping,
    set_dotted,
)
from caekit.data.datasets import conform
from caekit.data.imageset import ImageSet
from caekit.data.splits import Splits, labelled_sample, make_splits, split
from caekit.errors import validate_model
from caekit.evaluate.classification import ClassificationReport, classification_report, warn_small_classes
from caekit.fileio import atomic_write_text
from caekit.inference import classify
from caekit.runner import train_run
from caekit.runs import RunFolder

TABLE_METRICS = ("accuracy", "precision", "recall", "f1")


class PretrainConfig(StrictModel):
    """An autoencoder trained without labels on the Full training set (or on another dataset's, given ``data``)."""

    model: ModelConfig
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig | None = None
    val_fraction: float = Field(default=0.05, ge=0, lt=1)


Fraction = Annotated[float, Field(gt=0, le=1)]


class SampleConfig(StrictModel):
    """The labelled sample: ``per_class`` images of each class, or a ``fraction``; a list of either is a label-budget
    sweep (every model and seed at every budget)."""

    per_class: PositiveInt | list[PositiveInt] | None = None
    fraction: Fraction | list[Fraction] | None = None

    @model_validator(mode="after")
    def _one(self) -> SampleConfig:
        if (self.per_class is None) == (self.fraction is None):
            raise ValueError("give exactly one of per_class or fraction")
        if (isinstance(self.per_class, list) and not self.per_class) or (isinstance(self.fraction, list) and not self.fraction):
            raise ValueError("a budget list needs at least one budget")
        return self

    def budgets(self) -> list[SampleConfig]:
        """One sample config per budget, in the order given."""
        if self.per_class is not None:
            values = self.per_class if isinstance(self.per_class, list) else [self.per_class]
            return [SampleConfig(per_class=v) for v in values]
        values_f = self.fraction if isinstance(self.fraction, list) else [self.fraction]
        return [SampleConfig(fraction=v) for v in values_f if v is not None]

    @property
    def value(self) -> float:
        """The budget of a single-budget config: labels per class, or the fraction."""
        value = self.per_class if self.per_class is not None else self.fraction
        assert isinstance(value, (int, float)), "value is for a single budget; see budgets()"
        return float(value)

    def describe(self) -> str:
        if len(self.budgets()) > 1:
            if self.per_class is not None:
                return f"{', '.join(str(b.per_class) for b in self.budgets())} labels per class"
            return f"{', '.join(f'{b.fraction:.0%}' for b in self.budgets())} of the labels"
        if self.per_class:
            return f"{self.per_class} labels per class"
        return "all labels" if self.fraction == 1 else f"{self.fraction:.0%} of the labels"


class EntryConfig(StrictModel):
    """One classifier of the table; ``train``/``optim``/``objective.args`` override the comparison's defaults."""

    label: str
    model: ModelConfig
    pretrained: str | None = None  # a key of ``pretrain``: its run folder becomes the model's ``pretrained`` argument
    paired_with: str | None = None  # another row's label: the table adds the paired difference (same sample, seed)
    augment: Literal["auto", "none", "digits", "natural"] | None = None  # overrides data.augment for this row
    objective: dict[str, Any] = Field(default_factory=dict)
    optim: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)


class CompareConfig(StrictModel):
    name: str = "compare"
    runs_dir: str = "runs"
    data: DataConfig
    split_seed: int = 0
    sample: SampleConfig
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    val_fraction: float = Field(default=0.1, ge=0, lt=1)  # of each labelled sample, to pick the best epoch
    test_limit: int | None = Field(default=None, gt=0)
    # every classifier takes at least this many optimiser steps: a small label budget gets more epochs, not fewer steps
    min_steps: int | None = Field(default=None, gt=0, le=10_000_000)
    pretrain: dict[str, PretrainConfig] = Field(default_factory=dict)
    objective: ObjectiveConfig = Field(default_factory=lambda: ObjectiveConfig(name="classify"))
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    models: list[EntryConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> CompareConfig:
        labels = [entry.label for entry in self.models]
        for entry in self.models:
            if entry.paired_with is not None and (entry.paired_with not in labels or entry.paired_with == entry.label):
                raise ValueError(f"{entry.label}: paired_with names another row's label, one of: {', '.join(labels)}")
            if entry.pretrained is not None and entry.pretrained not in self.pretrain:
                raise ValueError(f"model '{entry.label}' uses pretrained '{entry.pretrained}', which is not under pretrain:")
        if len(set(labels)) != len(labels):
            raise ValueError("model labels must be unique")
        return self


def load_compare_config(source: str | Path | dict[str, Any], overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Validate a comparison config (YAML path or mapping); ``overrides`` are dotted paths (``train.epochs``)."""
    where = "compare config"
    if isinstance(source, (str, Path)):
        where = str(source)
        source = read_mapping(source, "compare config", "data:, sample:, models: ...")
    return validate_model(CompareConfig, set_dotted(dict(source), overrides or {}), where)


# --------------------------------------------------------------------------------------------- training one model


@dataclass
class Trained:
    model: nn.Module
    run: RunFolder
    history: list[dict[str, float]]
    seconds: float


def train_model(
    model_cfg: ModelConfig,
    objective_cfg: ObjectiveConfig,
    train_cfg: TrainConfig,
    optim_cfg: OptimConfig,
    data_cfg: DataConfig,
    train: ImageSet,
    val: ImageSet | None,
    runs_dir: str | Path,
    name: str,
    test: ImageSet | None = None,
    remake: tuple[DataConfig, int] | None = None,
) -> Trained:
    """Train one model on in-memory splits into a run folder (the run assembly's, as for any run); the best epoch is
    kept. ``remake``: the data settings and seed that make the Full set and the test split again."""
    config = RunConfig(
        name=name,
        runs_dir=str(runs_dir),
        model=model_cfg,
        data=data_cfg,
        objective=objective_cfg,
        optim=optim_cfg,
        train=train_cfg,
    )
    result = train_run(config, Splits(train, val, test), remake=remake)
    assert result.run is not None
    return Trained(result.model, result.run, result.history, result.seconds)


EPOCH_COUNTS = ("patience", "warmup_epochs")  # the recipe's other lengths in epochs, beside train.epochs
OBJECTIVE_EPOCH_COUNTS = ("linear_probe_epochs",)


def stretch_to_min_steps(train_cfg: TrainConfig, objective_cfg: ObjectiveConfig, steps_per_epoch: int, min_steps: int) -> None:
    """Give a small sample at least ``min_steps`` optimiser steps by more epochs, and stretch every other count of
    epochs in the recipe (patience, warm-up, linear-probe epochs) by the same factor, so the schedule keeps its shape
    in steps: a patience of 10 epochs of 3 steps would otherwise stop a 10-label run after a few dozen steps."""
    epochs = max(train_cfg.epochs, math.ceil(min_steps / steps_per_epoch))
    factor = epochs / train_cfg.epochs
    if factor <= 1:
        return
    train_cfg.epochs = epochs
    for field in (*EPOCH_COUNTS, "step_size") if train_cfg.scheduler == "step" else EPOCH_COUNTS:
        if getattr(train_cfg, field):
            setattr(train_cfg, field, math.ceil(getattr(train_cfg, field) * factor))
    for key in OBJECTIVE_EPOCH_COUNTS:
        if objective_cfg.args.get(key):
            objective_cfg.args[key] = math.ceil(objective_cfg.args[key] * factor)


def _merged(base: BaseModel, overrides: dict[str, Any], cls: type[BaseModel], what: str) -> Any:
    return validate_model(cls, {**base.model_dump(), **overrides}, what)


# --------------------------------------------------------------------------------------------- the protocol


@dataclass
class CompareResult:
    rows: list[dict[str, Any]]  # one per model and seed
    summary: list[dict[str, Any]]  # one per model: mean and std of each metric
    reports: dict[str, ClassificationReport]  # per model, on the test predictions of all seeds pooled
    folder: Path
    paths: dict[str, Path]


def full_and_test(cfg: CompareConfig) -> tuple[DataConfig, int]:
    """The data settings and seed that make the comparison's Full set (train) and test split (see ``load_data``)."""
    return cfg.data.model_copy(update={"val_fraction": 0}), cfg.split_seed


def load_data(cfg: CompareConfig) -> Splits:
    """Full training set and test split, fixed by ``split_seed`` (no validation part: each sample carves its own)."""
    data, seed = full_and_test(cfg)
    splits = make_splits(seed=seed, **data.split_options())
    assert splits.test is not None  # make_splits always has a test split
    if cfg.test_limit and cfg.test_limit < len(splits.test):
        splits.test = split(splits.test, 1 - cfg.test_limit / len(splits.test), cfg.split_seed)[0]
    return splits


def pretrain(cfg: CompareConfig, key: str, full: ImageSet, folder: Path) -> Trained:
    """Train the autoencoder ``key`` without labels on the Full set (or on its own dataset, fitted to this data's shape)."""
    entry = cfg.pretrain[key]
    data_cfg, images = cfg.data, full
    if entry.data is not None:  # across datasets: another set, resized and converted to look like this one
        c, h, _ = full.shape
        data_cfg = entry.data.model_copy(update={"image_size": h, "channels": c})
        other = make_splits(
            data_cfg.name,
            data_cfg.root,
            h,
            c,
            data_cfg.fit,
            val_fraction=0,
            seed=cfg.split_seed,
            limit=data_cfg.limit,
            download=data_cfg.download,
            strict=data_cfg.strict,
        )
        images = conform(other.train, h, c)
    train, val = split(images, entry.val_fraction, cfg.split_seed) if entry.val_fraction > 0 else (images, None)
    remake = full_and_test(cfg) if entry.data is None else None  # another dataset's images are not this one's splits
    return train_model(
        entry.model, entry.objective, entry.train, entry.optim, data_cfg, train, val, folder / "pretrain", key, remake=remake
    )


def _train_sample(
    cfg: CompareConfig,
    budget: SampleConfig,
    seed: int,
    full: ImageSet,
    test: ImageSet,
    pretrained: dict[str, Path],
    folder: Path,
    pooled: dict[str, tuple[list[np.ndarray], list[np.ndarray]]],
    name_budget: bool,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Draw the labelled sample of one budget and seed, train every model on it, score each on the test split."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-class warning is given once, for the first seed
        sample = labelled_sample(full, budget.per_class, budget.fraction, seed)  # type: ignore[arg-type]
    if seed == cfg.seeds[0]:
        warn_small_classes(sample, 2, "a validation split of the labelled sample")
    if cfg.val_fraction > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train, val = split(sample, cfg.val_fraction, seed)
    else:
        train, val = sample, None
    rows = []
    for entry in cfg.models:
        model_cfg = entry.model
        if entry.pretrained:
            model_cfg = ModelConfig(name=model_cfg.name, args={**model_cfg.args, "pretrained": str(pretrained[entry.pretrained])})
        train_cfg = _merged(cfg.train, {**entry.train, "seed": seed}, TrainConfig, f"{entry.label}: train")
        optim_cfg = _merged(cfg.optim, entry.optim, OptimConfig, f"{entry.label}: optim")
        objective_cfg = ObjectiveConfig(
            name=entry.objective.get("name", cfg.objective.name), args={**cfg.objective.args, **entry.objective.get("args", {})}
        )
        if cfg.min_steps:
            stretch_to_min_steps(train_cfg, objective_cfg, math.ceil(len(train) / train_cfg.batch_size), cfg.min_steps)
        data_cfg = cfg.data.model_copy(update={"augment": entry.augment}) if entry.augment else cfg.data
        budget_part = f"-{_slug(budget.describe())}" if name_budget else ""
        name = f"{_slug(entry.label)}{budget_part}-seed{seed}"
        done = train_model(
            model_cfg, objective_cfg, train_cfg, optim_cfg, data_cfg, train, val, folder / "runs", name, test, full_and_test(cfg)
        )
        predicted, _ = classify(done.model, test)
        report = classification_report(test.labels.numpy(), predicted.numpy(), full.classes)
        pooled[entry.label][0].append(test.labels.numpy())
        pooled[entry.label][1].append(predicted.numpy())
        row = {
            "data": cfg.data.name,
            "sample": budget.describe(),
            "budget": budget.value,
            "labelled": len(sample),
            "model": entry.label,
            "seed": seed,
            **{m: report.summary()[m] for m in TABLE_METRICS},
            "weighted_f1": report.weighted["f1"],
            "epochs": len(done.history),
            "seconds": round(done.seconds, 1),
            "run": str(done.run.path),
        }
        rows.append(row)
        say(
            f"  {budget.describe()}, seed {seed}  {entry.label:32s} accuracy {row['accuracy']:.4f}  macro F1 {row['f1']:.4f}  ({done.seconds:.0f} s)"
        )
    return rows


def run_compare(
    config: CompareConfig | str | Path | dict[str, Any],
    overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = print,
) -> CompareResult:
    """Run the whole protocol and write the tables and pictures; returns them."""
    from caekit.viz.representations import budget_curves, comparison_bars, confusion_picture

    cfg = config if isinstance(config, CompareConfig) else load_compare_config(config, overrides)
    say = progress or (lambda _: None)
    folder = RunFolder.create(cfg.runs_dir, cfg.name, "compare").path
    atomic_write_text(folder / "compare.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    splits = load_data(cfg)
    full, test = splits.train, splits.test
    assert test is not None  # load_data's splits come from make_splits
    classes = full.classes
    say(f"{cfg.data.name}: Full {len(full)} images, test {len(test)}, {len(classes)} classes; sample: {cfg.sample.describe()}")
    warn_small_classes(test, 2, "a reliable test score")

    pretrained: dict[str, Path] = {}
    for key in dict.fromkeys(e.pretrained for e in cfg.models if e.pretrained):
        say(f"pre-training '{key}' ({cfg.pretrain[key].model.name}) without labels")
        done = pretrain(cfg, key, full, folder)
        pretrained[key] = done.run.path
        say(f"  {done.run.path} in {done.seconds:.0f} s")

    rows: list[dict[str, Any]] = []
    budgets = cfg.sample.budgets()
    for budget in budgets:
        # confusion matrices and per-class reports pool the seeds of the last budget
        pooled: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {e.label: ([], []) for e in cfg.models}
        for seed in cfg.seeds:
            rows += _train_sample(cfg, budget, seed, full, test, pretrained, folder, pooled, len(budgets) > 1, say)

    reports = {label: classification_report(np.concatenate(t), np.concatenate(p), classes) for label, (t, p) in pooled.items()}
    summary = summarise(rows, {e.label: e.paired_with for e in cfg.models if e.paired_with})
    paths = write_tables(rows, summary, reports, cfg, folder)
    last = [s for s in summary if s["sample"] == budgets[-1].describe()]
    paths["bars"] = comparison_bars(
        last, folder / "bars.png", ("accuracy", "f1"), title=f"{cfg.data.name}, {budgets[-1].describe()}, {_seeds(cfg)}"
    )
    if len(budgets) > 1:
        unit = "labels per class" if cfg.sample.per_class is not None else "share of the labels"
        paths["budgets"] = budget_curves(
            summary, folder / "budgets.png", unit, title=f"{cfg.data.name}, {_seeds(cfg)} (mean and spread)"
        )
    for label, report in reports.items():
        paths[f"confusion:{label}"] = confusion_picture(
            report.confusion, classes, folder / f"confusion-{_slug(label)}.png", title=f"{label} ({cfg.data.name}, seeds pooled)"
        )
    say(f"tables and pictures in {folder}")
    return CompareResult(rows, summary, reports, folder, paths)


def _seeds(cfg: CompareConfig) -> str:
    return "1 seed" if len(cfg.seeds) == 1 else f"{len(cfg.seeds)} seeds"


def classify_run(
    run: str | Path,
    mode: str = "linear",
    per_class: int | None = None,
    fraction: float | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    objective_args: dict[str, Any] | None = None,
    seed: int = 0,
    runs_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = print,
) -> CompareResult:
    """Encoder + FC head on a trained autoencoder, on (a sample of) the labels of its dataset or another: a
    one-model comparison, so it leaves the same tables, pictures and run folder as ``run_compare`` (by default
    inside the autoencoder's run folder)."""
    from caekit.inference import output_folder

    meta = read_meta(run)
    data_meta = dict(meta.get("data") or {})
    if dataset:
        data_meta = {"name": dataset, "root": data_root}
    elif data_root:
        data_meta["root"] = data_root
    c, h, _ = meta["image_shape"]
    config = {
        "name": f"classify-{mode}",
        "runs_dir": str(runs_dir or output_folder(run)),
        "data": {"name": data_meta["name"], "root": data_meta.get("root"), "image_size": h, "channels": c},
        "sample": {"per_class": per_class} if per_class else {"fraction": fraction or 1.0},
        "seeds": [seed],
        "optim": {"lr": lr},
        "train": {"epochs": epochs},
        "models": [
            {
                "label": f"encoder + FC ({mode})",
                "model": {"name": "encoder_classifier", "args": {"pretrained": str(run), "mode": mode}},
                "objective": {"args": objective_args or {}},
            }
        ],
    }
    return run_compare(config, progress=progress)


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def summarise(rows: list[dict[str, Any]], paired: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Mean and (sample) standard deviation over seeds of each metric, per sample and model, in the order of first
    appearance. ``paired`` (row label -> its twin's label) adds, for accuracy and F1, the mean difference to the twin
    over the seeds both ran (same sample, same seed) and its standard error."""
    out = []
    for sample, label in dict.fromkeys((r["sample"], r["model"]) for r in rows):
        mine = [r for r in rows if r["model"] == label and r["sample"] == sample]
        entry: dict[str, Any] = {
            "data": mine[0]["data"],
            "sample": sample,
            "budget": mine[0].get("budget"),
            "model": label,
            "seeds": len(mine),
        }
        for metric in (*TABLE_METRICS, "weighted_f1", "seconds"):
            values = np.array([r[metric] for r in mine], dtype=np.float64)
            entry[f"{metric}_mean"] = float(values.mean())
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        twin = (paired or {}).get(label)
        if twin is not None:
            theirs = {r["seed"]: r for r in rows if r["model"] == twin and r["sample"] == sample}
            both = [r for r in mine if r["seed"] in theirs]
            entry["paired_with"] = twin
            for metric in ("accuracy", "f1"):
                diffs = np.array([r[metric] - theirs[r["seed"]][metric] for r in both], dtype=np.float64)
                entry[f"{metric}_diff_mean"] = float(diffs.mean()) if len(diffs) else float("nan")
                se = diffs.std(ddof=1) / np.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
                entry[f"{metric}_diff_se"] = float(se)
        out.append(entry)
    return out


def summary_markdown(summary: list[dict[str, Any]]) -> str:
    paired = any("paired_with" in s for s in summary)
    extra = " Δ accuracy (paired) |" if paired else ""
    lines = [
        f"| data | sample | model | accuracy | precision | recall | F1 | seeds |{extra}",
        "|---|---|---|---|---|---|---|---|" + ("---|" if paired else ""),
    ]
    for s in summary:
        cells = " | ".join(f"{s[f'{m}_mean']:.4f} ± {s[f'{m}_std']:.4f}" for m in TABLE_METRICS)
        diff = ""
        if paired:
            diff = " |"
            if "paired_with" in s:
                se = s["accuracy_diff_se"]
                spread = f" ± {100 * se:.2f}" if np.isfinite(se) else " (one seed)"
                diff = f" {100 * s['accuracy_diff_mean']:+.2f}{spread} pt vs {s['paired_with']} |"
        lines.append(f"| {s['data']} | {s['sample']} | {s['model']} | {cells} | {s['seeds']} |{diff}")
    return "\n".join(lines)


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row))  # a paired row has columns the others lack
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_tables(
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    reports: dict[str, ClassificationReport],
    cfg: CompareConfig,
    folder: Path,
) -> dict[str, Path]:
    paths = {"results": folder / "results.csv", "summary_csv": folder / "summary.csv", "summary_md": folder / "summary.md"}
    atomic_write_text(paths["results"], _csv(rows))
    atomic_write_text(paths["summary_csv"], _csv(summary))
    text = [
        f"# {cfg.name}\n",
        f"{cfg.data.name}: {cfg.sample.describe()}, seeds {cfg.seeds}; precision, recall and F1 are "
        "macro averages over classes; mean ± standard deviation over seeds; a paired difference is the mean over "
        "seeds of (row - its twin) on the same sample, ± its standard error.\n",
        summary_markdown(summary),
        "",
    ]
    for label, report in reports.items():
        if report.confused_pairs:
            pairs = "; ".join(f"{t} -> {p} ({n})" for t, p, n in report.confused_pairs[:5])
            text.append(f"- {label}: most confused (true -> predicted, seeds pooled): {pairs}")
    atomic_write_text(paths["summary_md"], "\n".join(text) + "\n")
    return paths


__all__ = [
    "CompareConfig",
    "CompareResult",
    "EntryConfig",
    "PretrainConfig",
    "SampleConfig",
    "classify_run",
    "load_compare_config",
    "run_compare",
    "summarise",
    "summary_markdown",
    "train_model",
]
