"""Run configuration: one validated tree (model, data, objective, optimiser, training) read from YAML or Python.

Any field can be overridden with a dotted path (``train.epochs=5``, ``optim.lr=3e-4``, ``model.args.upsample=nearest``):
the CLI's ``--set`` and the hyper-parameter search both use ``with_overrides``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from caekit.errors import ConfigError, validate_model
from caekit.yamlio import parse_yaml, read_yaml


class StrictModel(BaseModel):
    """A settings block that refuses unknown fields (a misspelt key is an error, not silently ignored) and yes/no
    values where a number belongs (``epochs: true`` is not 1)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(str(key))
                if isinstance(value, bool) and field is not None and not _takes_bool(field.annotation):
                    raise ValueError(f"{key} is {str(value).lower()}, a yes/no value; give a number")
        return data


class ModelConfig(StrictModel):
    name: str = "cae32"
    args: dict[str, Any] = Field(default_factory=dict)
    pretrained: str | None = None  # start from the model zoo's weights trained on this (e.g. "mnist")


class DataConfig(StrictModel):
    name: str = "digits"
    root: str | None = None
    image_size: PositiveInt | None = Field(default=None, le=4096)  # above that one image alone is 48 MB of uint8
    channels: Literal[1, 3] | None = None
    fit: Literal["pad", "stretch", "crop"] = "pad"
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    limit: int | None = Field(default=None, ge=10)  # a few images for each split at the least
    download: bool = False
    strict: bool = False
    in_memory: bool | None = None  # folders: None loads a decoded set into memory when it takes a quarter of it or less
    augment: Literal["auto", "none", "digits", "natural"] = "auto"  # training batches only; see caekit.data.augment

    def split_options(self) -> dict[str, Any]:
        """The fields that say which images make the splits (what ``make_splits`` takes)."""
        return self.model_dump(exclude={"augment"})


class ObjectiveConfig(StrictModel):
    name: str = "reconstruct"
    args: dict[str, Any] = Field(default_factory=dict)


def _takes_bool(annotation: Any) -> bool:
    return (
        annotation is bool
        or annotation is Any
        or bool in get_args(annotation)
        or get_origin(annotation) is dict
        or annotation in (dict, list)
    )


OPTIM_DEFAULTS: dict[str, Any] = {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 5e-4}


class OptimConfig(StrictModel):
    """The optimiser. A field left empty (None) takes the objective's default (a GAN's Adam 2e-4, beta1 0.5, no
    weight decay), else the lecture's: Adam, lr 1e-3, betas (0.9, 0.999), weight decay 5e-4. A value given always wins."""

    name: Literal["adam", "sgd"] = "adam"
    lr: float | None = Field(default=None, gt=0, le=10)  # above 10 no optimiser converges, and torch's float32 steps overflow
    betas: tuple[float, float] | None = None
    weight_decay: float | None = Field(default=None, ge=0, le=10)
    momentum: float = Field(default=0.9, ge=0, lt=1)

    @field_validator("betas")
    @classmethod
    def _betas_below_one(cls, betas: tuple[float, float] | None) -> tuple[float, float] | None:
        if betas is not None and not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adam's betas lie in [0, 1), e.g. [0.9, 0.999]; got {list(betas)}")
        return betas

    def resolved(self, defaults: dict[str, Any] | None = None) -> OptimConfig:
        """Every empty field filled: from ``defaults`` (the objective's) first, then from ``OPTIM_DEFAULTS``."""
        fill = {**OPTIM_DEFAULTS, **(defaults or {})}
        return self.model_copy(update={k: fill[k] for k in OPTIM_DEFAULTS if getattr(self, k) is None})


DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _check_device(device: str) -> str:
    if not DEVICE.fullmatch(device):
        raise ValueError(f"device is auto, cpu, mps, cuda or cuda:N, not {device!r}")
    return device


class TrainConfig(StrictModel):
    epochs: int = Field(default=10, ge=1, le=1_000_000)
    batch_size: PositiveInt = 64
    seed: int = Field(default=0, ge=0, lt=2**31)
    scheduler: Literal["none", "cosine", "step", "plateau"] = "none"
    warmup_epochs: int = Field(default=0, ge=0, le=1_000_000)  # a linear warm-up of the learning rate before the schedule
    step_size: PositiveInt = 10
    gamma: float = Field(default=0.1, gt=0, le=10)  # the step and plateau schedules multiply the rate by it
    patience: PositiveInt | None = None
    grad_clip: PositiveFloat | None = None
    device: Annotated[str, AfterValidator(_check_device)] = "auto"  # auto, cpu, mps, cuda or cuda:N
    channels_last: bool | None = None
    amp: bool | None = None
    compile: bool = False
    cpu_tuning: bool | None = (
        None  # process-wide CPU speed settings (caekit.training.cpu); None: on for the CLI, off in a library
    )
    retain_memory: bool = True  # with cpu_tuning: also keep freed activation memory for the next step
    progress: bool = True  # the progress bar
    verbose: bool = True  # a line per epoch
    loggers: list[Literal["tensorboard", "mlflow", "wandb"]] = ["tensorboard"]  # trackers (pydantic copies the default)


class RunConfig(StrictModel):
    name: str | None = None
    runs_dir: str = "runs"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


def parse_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    return validate_model(RunConfig, data, source)


def read_mapping(path: str | Path, what: str = "config file", keys: str = "model:, data:, train: ...") -> dict[str, Any]:
    """A YAML file holding a mapping, or a one-line ConfigError saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} '{path}' does not exist")
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} is a mapping ({keys})")
    return data


def load_config(path: str | Path) -> RunConfig:
    return parse_config(read_mapping(path), str(path))


def _wants_text(schema: type[BaseModel], dotted: str) -> bool:
    """Whether the schema's field at ``dotted`` holds text, so that ``--set data.root=2024`` stays the string '2024'."""
    cls: Any = schema
    for part in dotted.split("."):
        field = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if field is None:
            return False
        cls = field.annotation
    return cls is str or (
        get_origin(cls) in (Union, UnionType) and str in get_args(cls) and all(a in (str, type(None)) for a in get_args(cls))
    )


def parse_assignments(items: list[str], schema: type[BaseModel] | None = None) -> dict[str, Any]:
    """``["optim.lr=1e-3", "data.root=2024"]`` -> {dotted path: value}: text where the schema's field holds text,
    else the value read as YAML (numbers, lists, mappings, booleans)."""
    schema = schema or RunConfig
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form section.field=value")
        if _wants_text(schema, key):
            pairs[key] = value
            continue
        pairs[key] = parse_yaml(value, f"--set {key}")
    return pairs


def set_dotted(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``data`` with each dotted path (``train.epochs``) set, creating missing sections."""
    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                if part in node and node[part] is not None:
                    raise ConfigError(f"'{dotted}': '{part}' is not a section")
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return data


def with_overrides(config: RunConfig, overrides: dict[str, Any] | list[str]) -> RunConfig:
    """A copy with dotted-path fields replaced; ``["optim.lr=1e-3"]`` strings are parsed as YAML values."""
    if isinstance(overrides, list):
        overrides = parse_assignments(overrides)
    return parse_config(set_dotted(config.model_dump(), overrides), "override")


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def resolve_config(
    config: RunConfig | dict[str, Any] | str | Path | None, overrides: dict[str, Any] | list[str] | None = None
) -> RunConfig:
    """A run config from an object, a mapping or a YAML path (None: the defaults), with dotted overrides applied."""
    if config is None:
        config = RunConfig()
    elif isinstance(config, (str, Path)):
        config = load_config(config)
    elif isinstance(config, dict):
        config = parse_config(config)
    return with_overrides(config, overrides) if overrides else config
