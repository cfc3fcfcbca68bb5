"""Errors a user can act on: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class CaekitError(Exception):
    """Base class for every error caused by user input (configs, specs, data, run folders)."""


class SpecError(CaekitError):
    """An architecture spec that is malformed or whose shapes do not work out."""


class ConfigError(CaekitError):
    """A run configuration that is malformed or inconsistent."""


class DataError(CaekitError):
    """A dataset that is missing, empty or unreadable."""


class CheckpointError(CaekitError):
    """A checkpoint or run folder that is missing or does not match what is asked of it."""


class TrainingDiverged(CaekitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def validation_message(exc: ValidationError, fallback: str = "config") -> str:
    """The first problem of a pydantic ValidationError as one line: ``field.path: message``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or fallback
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def validate_model(cls: type[M], data: Any, source: str, error: type[CaekitError] = ConfigError) -> M:
    """``cls.model_validate(data)``, with a failure turned into one actionable line naming ``source`` and the field."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise error(f"{source}: {validation_message(exc)}") from None
