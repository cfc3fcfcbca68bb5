"""The search space and the search file: Param, SearchConfig, reading and checking a file, the points to try."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt, model_validator

from caekit.config import RunConfig, StrictModel, load_config, parse_config, read_mapping, with_overrides
from caekit.errors import CaekitError, ConfigError, validate_model

MAXIMISED = ("psnr", "ssim", "acc", "f1", "nmi", "ari", "auc", "precision", "recall", "iou", "dice")


class Param(StrictModel):
    """One searched field: a list of ``values``, or a ``low``..``high`` range (float or int, optionally log)."""

    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    type: Literal["float", "int"] | None = None
    num: PositiveInt = 3

    @model_validator(mode="after")
    def _check(self) -> Param:
        if (self.values is None) == (self.low is None or self.high is None):
            raise ValueError("give either values: [...] or both low and high")
        if self.values is not None and not self.values:
            raise ValueError("values is empty")
        if self.low is not None and self.high is not None:
            if self.low >= self.high:
                raise ValueError(f"low {self.low} must be below high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
            if self.type is None:
                self.type = "int" if float(self.low).is_integer() and float(self.high).is_integer() else "float"
        return self

    def cast(self, value: float) -> int | float:
        return int(round(value)) if self.type == "int" else float(value)  # noqa: RUF046 - numpy scalars

    def sample(self, rng: np.random.Generator) -> Any:
        if self.values is not None:
            return self.values[int(rng.integers(len(self.values)))]
        low, high = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.type == "int" and not self.log:
            return int(rng.integers(int(low), int(high) + 1))
        if self.log:
            value = math.exp(rng.uniform(math.log(low), math.log(high + (0.4999 if self.type == "int" else 0))))
        else:
            value = rng.uniform(low, high)
        return self.cast(min(value, high))

    def grid(self) -> list[Any]:
        if self.values is not None:
            return list(self.values)
        assert self.low is not None and self.high is not None  # _check: values, or both low and high
        points = (np.geomspace if self.log else np.linspace)(self.low, self.high, self.num)
        return list(dict.fromkeys(self.cast(v) for v in points))  # int ranges may collapse to fewer points


class SearchConfig(StrictModel):
    name: str | None = None
    runs_dir: str | None = None
    base: str | dict[str, Any] = Field(default_factory=dict)
    method: Literal["grid", "random", "optuna"] = "random"
    trials: PositiveInt = 8
    seed: int = 0
    metric: str = "val_loss"
    mode: Literal["min", "max"] | None = None
    parallel: PositiveInt | Literal["auto"] = "auto"
    threads: PositiveInt | None = None
    prune: bool = False
    space: dict[str, Param]

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        if not self.space:
            raise ValueError("space is empty: name at least one dotted config field to search")
        if self.prune and self.method != "optuna":
            raise ValueError("prune needs method: optuna")
        return self

    @property
    def direction(self) -> str:
        if self.mode:
            return self.mode
        return "max" if any(word in self.metric.lower() for word in MAXIMISED) else "min"


# ------------------------------------------------------------------------------------------- reading the file


def load_search(path: str | Path) -> tuple[SearchConfig, RunConfig]:
    """The search settings and its resolved base run config (a ``base`` path is relative to the search file)."""
    path = Path(path)
    return parse_search(read_mapping(path, "search file", "base:, space:, method: ..."), path.parent, str(path))


def parse_search(
    data: dict[str, Any], here: Path = Path("."), source: str = "search", base_overrides: dict[str, Any] | list[str] | None = None
) -> tuple[SearchConfig, RunConfig]:
    """Validate a search mapping; ``base_overrides`` (dotted fields) change its base run config, e.g. data.root."""
    space = data.get("space") or {}
    if isinstance(space, dict):
        space = {k: dict(v) if isinstance(v, dict) else v for k, v in space.items()}
        data = {**data, "space": space}
        for spec in space.values():  # a range written with a decimal point (1.0 .. 10.0) stays float
            if isinstance(spec, dict) and "type" not in spec and any(isinstance(spec.get(k), float) for k in ("low", "high")):
                spec["type"] = "float"
    search = validate_model(SearchConfig, data, source)
    if isinstance(search.base, str):
        base_path = Path(search.base)
        if not base_path.is_absolute() and (here / base_path).is_file():
            base_path = here / base_path
        base = load_config(base_path)
    else:
        base = parse_config(search.base, f"{source}: base")
    if base_overrides:
        base = with_overrides(base, base_overrides)
    # Every field must exist and take its values: one bad name fails now, not after hours of trials.
    for key, param in search.space.items():
        for value in param.grid() if param.values is not None else [param.cast(param.low), param.cast(param.high)]:  # type: ignore[arg-type]
            try:
                _check_point(with_overrides(base, {key: value}))
            except CaekitError as exc:
                raise ConfigError(f"{source}: space.{key} = {value!r}: {exc}") from None
    return search, base


def _check_point(config: RunConfig) -> None:
    """Build the model on the meta device (no memory, no data) so that a misspelt model argument fails early."""
    import torch

    from caekit.models.registry import create_model

    try:
        with torch.device("meta"):
            create_model(config.model.name, **config.model.args)
    except CaekitError:
        raise
    except Exception:
        pass


# ------------------------------------------------------------------------------------------- points to try


def grid_points(space: dict[str, Param]) -> list[dict[str, Any]]:
    keys = list(space)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(space[k].grid() for k in keys))]


def random_points(space: dict[str, Param], n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [{key: param.sample(rng) for key, param in space.items()} for _ in range(n)]
