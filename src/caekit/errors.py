"""Errors a user can act on: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
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


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest of ``choices`` to a misspelt ``name`` ("" when none is close)."""
    options = [str(c) for c in choices]
    scores = {
        c: difflib.SequenceMatcher(None, str(name), c).ratio()
        for c in difflib.get_close_matches(str(name), options, n=3, cutoff=0.6)
    }
    best = sorted(c for c, score in scores.items() if score == max(scores.values(), default=0))
    return f"; did you mean {' or '.join(repr(c) for c in best)}?" if best else ""


def _fields_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) model that ``loc`` points into; [] where that is no model."""
    for part in loc:
        field = cls.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        cls = annotation
    return list(cls.model_fields)


def validation_message(exc: ValidationError, fallback: str = "config", cls: type[BaseModel] | None = None) -> str:
    """The first problem of a pydantic ValidationError as one line: ``field.path: message``, with a did-you-mean for
    a misspelt field and a hint for a section given as a plain value."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or fallback
    kind = first["type"]
    if kind == "extra_forbidden" and cls is not None:
        fields = _fields_at(cls, tuple(first["loc"][:-1]))
        allowed = f" (its fields: {', '.join(fields)})" if fields else ""
        return f"{where}: no such field{did_you_mean(str(first['loc'][-1]), fields) or allowed}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{where}: a mapping such as {{name: ...}}, not {first['input']!r}"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def validate_model(cls: type[M], data: Any, source: str, error: type[CaekitError] = ConfigError) -> M:
    """``cls.model_validate(data)``, with a failure turned into one actionable line naming ``source`` and the field."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise error(f"{source}: {validation_message(exc, cls=cls)}") from None
